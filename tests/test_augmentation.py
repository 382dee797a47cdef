"""The GAN-augmentation experiment: equal-size arms, its controls, and a tiny end-to-end run."""

import numpy as np
import pytest

import tlcourse.keras as tk
import tlcourse.torch as tt
from tlcourse.data import make_few_shot_split
from tlcourse.experiments import ARMS, make_arm_sets, run_gan_augmentation, score_samples


def _labelled(n_per_class, value, num_classes=3):
    """Constant images whose value encodes their source (tenths) and class (hundredths)."""
    y = np.repeat(np.arange(num_classes), n_per_class)
    X = np.full((len(y), 28, 28), value, np.float32) + (y / 100).astype(np.float32)[:, None, None]
    return X, y


def _source_and_class(X):
    code = np.round(X[:, 14, 14] * 100).astype(int)
    return code // 10, code % 10


def test_every_arm_has_the_same_size_and_keeps_the_real_images():
    X_real, y_real = _labelled(2, 0.5)
    generated, extra = _labelled(20, 0.9), _labelled(20, 0.1)
    sets = make_arm_sets(X_real, y_real, copies=4, seed=0, generated=generated, extra_real=extra)
    assert list(sets) == list(ARMS)
    for name, (X, y) in sets.items():
        assert X.shape == (30, 28, 28) and len(y) == 30, name
        np.testing.assert_array_equal(X[:6], X_real)  # the real images come first
        np.testing.assert_array_equal(np.bincount(y), [10, 10, 10])  # classes stay balanced
    # Where each added image comes from (5: real, 9: generated, 1: extra real), and that its
    # label is the class it was made for. Affine copies are shifted, so only their count is
    # checked (the mixed arm has 12 of them and 12 generated images).
    expected = {"real only": 5, "real + GAN": 9, "real + extra real": 1}
    for name, origin in expected.items():
        X, y = sets[name]
        source, cls = _source_and_class(X[6:])
        assert (source == origin).all(), name
        np.testing.assert_array_equal(cls, y[6:])
    X, y = sets["real + affine + GAN"]
    source, cls = _source_and_class(X[18:])
    assert (source == 9).all() and (cls == y[18:]).all()
    assert not np.array_equal(sets["real + affine"][0][6:12], X_real)


def test_arms_without_generated_or_extra_images_are_left_out():
    X_real, y_real = _labelled(2, 0.5)
    assert list(make_arm_sets(X_real, y_real, copies=2, seed=0)) == list(ARMS[:2])


def test_bad_arm_inputs_are_refused():
    X_real, y_real = _labelled(2, 0.5)
    with pytest.raises(ValueError, match="even"):
        make_arm_sets(X_real, y_real, copies=3, seed=0)
    with pytest.raises(ValueError, match="generated has 1 images of class 0"):
        make_arm_sets(X_real, y_real, copies=2, seed=0, generated=_labelled(1, 0.9))
    with pytest.raises(ValueError, match="extra_real"):
        make_arm_sets(X_real, y_real, copies=2, seed=0, extra_real=_labelled(3, 0.9))


@pytest.mark.slow
def test_score_samples_ranks_real_above_noise(tiny_digits):
    (X_train, y_train), (X_test, y_test) = tiny_digits
    tt.set_seed(0)
    judge = tt.build_digit_net(width=8)
    tt.fit(judge, X_train, y_train, num_epochs=10, batch_size=16, lr=1e-2, quiet=True)
    reference = tt.extract_features(judge, X_test)
    real = score_samples(tt, judge, X_train[:128], y_train[:128], reference)
    noise = np.random.default_rng(0).uniform(0, 1, (128, 28, 28))
    fake = score_samples(tt, judge, noise, y_train[:128], reference)
    assert real["fid"] < fake["fid"]
    assert real["consistency"] == pytest.approx(
        tt.evaluate(judge, X_train[:128], y_train[:128])["accuracy"]
    )
    assert real["consistency"] > fake["consistency"]


@pytest.mark.parametrize(
    "backend", [pytest.param(tt, id="torch"), pytest.param(tk, id="keras", marks=pytest.mark.slow)]
)
def test_tiny_run_returns_every_arm_and_leaves_the_inputs_alone(
    backend, tiny_digits, recorded_scores
):
    (X, y), _ = tiny_digits
    backend.set_seed(0)
    classifier = backend.build_digit_net(width=4)
    G = backend.build_generator(latent_dim=8, width=4)
    D = backend.build_discriminator(width=4)
    before = [backend.generate(G, [0, 1], seed=0), backend.predict(classifier, X[:4])]
    judge = tt.build_digit_net(width=4)  # a PyTorch judge scores either framework's samples
    reference = tt.extract_features(judge, X[:40])
    scores = recorded_scores(backend, ignore=[judge])
    out = run_gan_augmentation(
        backend,
        classifier,
        G,
        D,
        X,
        y,
        k_per_class=2,
        seeds=[0, 1],
        copies=2,
        gan_recipe={"num_epochs": 2, "batch_size": 8, "lr": 1e-3},
        recipe={"num_epochs": 1, "batch_size": 8, "lr": 1e-3},
        score=lambda X_gen, y_gen: score_samples(tt, judge, X_gen, y_gen, reference),
        compare_scratch_gan=True,
        test_per_class=5,
        quiet=True,
    )
    assert set(out["accuracy"]) == set(ARMS)
    for arm, acc in out["accuracy"].items():
        assert acc.shape == (2,), arm
    # Per seed, one score per arm, in order: each cell holds the accuracy of the classifier
    # fine-tuned for it (recomputed from its logits), on that seed's test set.
    assert len(scores) == 2 * len(ARMS)
    for i, seed in enumerate((0, 1)):
        test = make_few_shot_split(y, 2, seed=seed, test_per_class=5).test
        for j, arm in enumerate(ARMS):
            labels, expected = scores[i * len(ARMS) + j]
            np.testing.assert_array_equal(labels, y[test])
            assert out["accuracy"][arm][i] == pytest.approx(expected, abs=1e-6), (arm, seed)
    for key in ("quality", "scratch_quality"):
        assert len(out[key]) == 2 and set(out[key][0]) == {"fid", "consistency"}, key
    X_gan, y_gan = out["samples"]
    assert X_gan.shape == (40, 28, 28) and np.bincount(y_gan).tolist() == [4] * 10
    np.testing.assert_array_equal(backend.generate(G, [0, 1], seed=0), before[0])
    np.testing.assert_array_equal(backend.predict(classifier, X[:4]), before[1])


def _tiny_torch_run(G, D, X, y, **kwargs):
    """run_gan_augmentation in PyTorch on a tiny classifier, k=2, one seed, with a scratch GAN."""
    return run_gan_augmentation(
        tt,
        tt.build_digit_net(width=4),
        G,
        D,
        X,
        y,
        k_per_class=2,
        seeds=[0],
        copies=2,
        compare_scratch_gan=True,
        **kwargs,
    )


def test_comparing_a_scratch_gan_needs_a_score(tiny_digits):
    (X, y), _ = tiny_digits
    G, D = tt.build_generator(width=4), tt.build_discriminator(width=4)
    with pytest.raises(ValueError, match="score"):
        _tiny_torch_run(G, D, X, y, gan_recipe={}, recipe={})


def test_a_scratch_gan_that_cannot_match_the_given_one_is_refused(tiny_digits):
    """The scratch GAN is built from the generator's settings and copied into the run's
    copy of it; a generator whose settings do not describe it is an error, not a partial
    copy that leaves some pretrained weights in the 'scratch' GAN."""
    (X, y), _ = tiny_digits
    G, D = tt.build_generator(width=4), tt.build_discriminator(width=4)
    G.width = 8  # claims another architecture than it has
    with pytest.raises(ValueError, match="does not match"):
        _tiny_torch_run(
            G,
            D,
            X,
            y,
            gan_recipe={"num_epochs": 1, "batch_size": 8},
            recipe={"num_epochs": 1, "batch_size": 8},
            score=lambda X_gen, y_gen: {"fid": 0.0},
            test_per_class=5,
            quiet=True,
        )
