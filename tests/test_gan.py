"""The conditional DCGAN in both frameworks: same architecture, generation, and training
that learns a trivially conditional data set."""

import numpy as np
import pytest

import tlcourse.keras as tk
import tlcourse.torch as tt

BACKENDS = pytest.mark.parametrize("backend", [tt, tk], ids=["torch", "keras"])


def n_params(backend, model) -> int:
    return backend.count_parameters(model)


def test_both_frameworks_build_the_same_networks():
    for args in ((16, 10, 8), (32, 3, 4)):
        assert n_params(tt, tt.build_generator(*args)) == n_params(tk, tk.build_generator(*args))
    for args in ((10, 8), (3, 4)):
        assert n_params(tt, tt.build_discriminator(*args)) == n_params(
            tk, tk.build_discriminator(*args)
        )


@BACKENDS
def test_generate_shapes_range_and_seeds(backend):
    backend.set_seed(0)
    generator = backend.build_generator(latent_dim=8, num_classes=10, width=4)
    images = backend.generate(generator, [0, 1, 9, 9], seed=3)
    assert images.shape == (4, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(images, backend.generate(generator, [0, 1, 9, 9], seed=3))
    assert not np.array_equal(images, backend.generate(generator, [0, 1, 9, 9], seed=4))
    X, y = backend.generate_labelled(generator, 3, seed=0)
    assert X.shape == (30, 28, 28) and y.tolist() == sorted(list(range(10)) * 3)
    for bad in ([10], [-1], [[0, 1]]):
        with pytest.raises(ValueError, match="labels"):
            backend.generate(generator, bad)
    with pytest.raises(ValueError, match="n_per_class must be a positive integer"):
        backend.generate_labelled(generator, 0)


@BACKENDS
def test_discriminator_gives_one_logit_per_image(backend):
    discriminator = backend.build_discriminator(num_classes=3, width=4)
    images = np.zeros((5, 28, 28), np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    if backend is tt:
        import torch

        out = discriminator(torch.zeros(5, 1, 28, 28), torch.as_tensor(labels)).detach().numpy()
    else:
        out = np.asarray(discriminator([images[..., None], labels.astype("int32")]))
    assert out.shape == (5,)


@pytest.mark.slow
@BACKENDS
def test_gan_learns_a_trivially_conditional_data_set(backend):
    # Class 0 is dark, class 1 is bright: a conditional generator must learn which is which.
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 128)
    X = np.clip(
        np.where(y[:, None, None] == 1, 0.9, 0.05) + rng.normal(0, 0.05, (256, 28, 28)), 0, 1
    ).astype(np.float32)
    backend.set_seed(0)
    generator = backend.build_generator(latent_dim=8, num_classes=2, width=8)
    discriminator = backend.build_discriminator(num_classes=2, width=8)
    history = backend.train_gan(
        generator,
        discriminator,
        X,
        y,
        num_epochs=12,
        batch_size=32,
        lr=1e-3,
        seed=0,
        sample_epochs=[1, 12],
        quiet=True,
    )
    assert set(history["samples"]) == {1, 12} and history["samples"][12].shape == (2, 28, 28)
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert len(history[key]) == 12 and np.isfinite(history[key]).all()
    dark = backend.generate(generator, [0] * 64, seed=1).mean()
    bright = backend.generate(generator, [1] * 64, seed=1).mean()
    # GAN dynamics differ between the frameworks (initialisers, optimiser details), so the
    # check is that the conditioning was learnt, not how far training got.
    assert dark < 0.3 and bright - dark > 0.3, (dark, bright)
    with pytest.raises(ValueError, match=r"Labels must lie in \[0, 2\)"):
        backend.train_gan(generator, discriminator, X, y + 5, num_epochs=1, quiet=True)


def _tiny_data(n):
    rng = np.random.default_rng(0)
    return rng.random((n, 28, 28), dtype=np.float32), np.arange(n) % 2


@pytest.mark.slow
def test_torch_train_gan_drops_the_last_incomplete_batch():
    batches = []
    tt.set_seed(0)
    generator = tt.build_generator(latent_dim=4, num_classes=2, width=2)
    discriminator = tt.build_discriminator(num_classes=2, width=2)
    generator.register_forward_hook(lambda module, args, out: batches.append(len(args[0])))
    for n, batch_size, expected in ((100, 32, [32, 32, 32]), (20, 32, [20])):
        batches.clear()
        tt.train_gan(
            generator,
            discriminator,
            *_tiny_data(n),
            num_epochs=2,
            batch_size=batch_size,
            quiet=True,
        )
        assert batches == 2 * expected


@pytest.mark.slow
def test_keras_train_gan_drops_the_last_batch_and_reuses_its_traced_step():
    tk.set_seed(0)
    generator = tk.build_generator(latent_dim=4, num_classes=2, width=2)
    discriminator = tk.build_discriminator(num_classes=2, width=2)
    X, y = _tiny_data(100)
    tk.train_gan(generator, discriminator, X, y, num_epochs=2, batch_size=32, quiet=True)
    gan = generator._tlcourse_gan
    assert isinstance(gan, tk.ConditionalGAN) and gan.discriminator is discriminator
    opt_d, opt_g, step = gan.d_optimizer, gan.g_optimizer, gan.train_function
    assert int(opt_d.iterations) == int(opt_g.iterations) == 2 * 3  # 100 // 32 steps an epoch
    # The kept ConditionalGAN is not part of the generator: it clones without it.
    assert not hasattr(tk.clone_model(generator), "_tlcourse_gan")
    tk.train_gan(generator, discriminator, X, y, num_epochs=1, batch_size=32, quiet=True)
    assert generator._tlcourse_gan is gan and gan.train_function is step  # no re-tracing
    assert int(opt_d.iterations) == 3  # the optimisers' state was reset
    tk.train_gan(generator, discriminator, X[:20], y[:20], num_epochs=2, quiet=True)
    assert int(opt_d.iterations) == 2  # fewer images than batch_size: one step an epoch
    tk.train_gan(generator, discriminator, X, y, num_epochs=1, lr=1e-3, quiet=True)
    assert generator._tlcourse_gan is not gan  # another rate: another ConditionalGAN
