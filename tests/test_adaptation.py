"""Domain adaptation: the alignment losses against NumPy, closed-form CORAL, the DANN
schedule, the training loop and AdaBN, in both frameworks."""

import numpy as np
import pytest

import tlcourse.keras as tk
import tlcourse.torch as tt
from tlcourse.adaptation import (
    METHODS,
    batch_indices,
    coral_transform,
    dann_lambda,
)
from tlcourse.experiments import run_adaptation


def _features(seed, n=12, d=5, shift=0.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * (1 + shift) + shift).astype(np.float32)


def _coral_numpy(a, b):
    d = a.shape[1]
    return np.sum((np.cov(a, rowvar=False) - np.cov(b, rowvar=False)) ** 2) / (4 * d * d)


def _mmd_numpy(a, b, bandwidths):
    """The biased MMD^2 estimate written as plain loops over pairs."""

    def k(u, v):
        return sum(np.exp(-np.sum((u - v) ** 2) / h) for h in bandwidths)

    def mean_k(P, Q):
        return np.mean([[k(p, q) for q in Q] for p in P])

    return mean_k(a, a) + mean_k(b, b) - 2 * mean_k(a, b)


def _default_bandwidths(a, b, multipliers=(0.25, 0.5, 1.0, 2.0, 4.0)):
    pooled = np.concatenate([a, b]).astype(np.float64)
    sq = ((pooled[:, None] - pooled[None]) ** 2).sum(-1)
    n = len(pooled)
    return [sq.sum() / (n * n - n) * m for m in multipliers]


def _both_losses(name, a, b, **kwargs):
    import torch

    torch_loss = getattr(tt.adaptation, name)(torch.tensor(a), torch.tensor(b), **kwargs)
    keras_loss = getattr(tk.adaptation, name)(a, b, **kwargs)
    return float(torch_loss), float(keras_loss)


def test_coral_loss_matches_numpy_in_both_frameworks():
    a, b = _features(0), _features(1, n=9, shift=0.7)
    expected = _coral_numpy(a.astype(np.float64), b.astype(np.float64))
    assert expected > 0.01
    for value in _both_losses("coral_loss", a, b):
        assert value == pytest.approx(expected, rel=1e-4)
    assert _both_losses("coral_loss", a, a) == pytest.approx((0.0, 0.0), abs=1e-7)


@pytest.mark.parametrize("bandwidths", [None, [0.5, 3.0]])
def test_mmd_loss_matches_numpy_in_both_frameworks(bandwidths):
    a, b = _features(2, n=7), _features(3, n=10, shift=0.5)
    h = _default_bandwidths(a, b) if bandwidths is None else bandwidths
    expected = _mmd_numpy(a.astype(np.float64), b.astype(np.float64), h)
    assert expected > 0.01
    for value in _both_losses("mmd_loss", a, b, bandwidths=bandwidths):
        assert value == pytest.approx(expected, rel=1e-4)
    assert _both_losses("mmd_loss", a, a) == pytest.approx((0.0, 0.0), abs=1e-6)


def test_mmd_grows_with_the_shift():
    a = _features(4, n=20)
    values = [_both_losses("mmd_loss", a, _features(5, n=20, shift=s))[0] for s in (0, 1, 3)]
    assert values[0] < values[1] < values[2]


@pytest.mark.parametrize("backend", [tt, tk], ids=["torch", "keras"])
@pytest.mark.parametrize("name", ["coral_loss", "mmd_loss"])
def test_losses_reject_bad_shapes(backend, name):
    loss = getattr(backend.adaptation, name)
    a = _features(0)
    if backend is tt:
        import torch

        a = torch.tensor(a)
    with pytest.raises(ValueError, match="equal width"):
        loss(a, a[:, :3])
    with pytest.raises(ValueError, match="at least 2 rows"):
        loss(a, a[:1])


def test_dann_lambda_rises_from_zero_to_almost_one():
    values = [dann_lambda(p) for p in np.linspace(0, 1, 11)]
    assert values[0] == 0.0
    assert values[-1] == pytest.approx(0.9999, abs=1e-4)
    assert np.all(np.diff(values) > 0)
    with pytest.raises(ValueError, match="progress"):
        dann_lambda(1.5)


def test_batch_indices_cover_each_pass_without_repeats():
    batches = batch_indices(np.random.default_rng(0), 10, 3)
    first_pass = [next(batches) for _ in range(3)]  # 3 full batches; the 10th index waits
    assert all(len(b) == 3 for b in first_pass)
    assert len(np.unique(np.concatenate(first_pass))) == 9
    assert len(next(batch_indices(np.random.default_rng(0), 2, 8))) == 2  # n < batch_size


def test_coral_transform_gives_source_the_target_statistics():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(400, 3)) @ np.array([[2.0, 0, 0], [0.5, 1, 0], [0, 0, 0.2]])
    target = rng.normal(size=(300, 3)) @ np.array([[0.3, 0, 0], [0, 3, 0], [1, 0, 1]]) + 5
    moved = coral_transform(source, target, eps=1e-9)
    np.testing.assert_allclose(moved.mean(0), target.mean(0), atol=1e-9)
    np.testing.assert_allclose(np.cov(moved, rowvar=False), np.cov(target, rowvar=False), atol=1e-6)
    # With the paper's ridge the match is only approximate, but much closer than before.
    gap = lambda X: np.abs(np.cov(X, rowvar=False) - np.cov(target, rowvar=False)).sum()  # noqa: E731
    assert gap(coral_transform(source, target)) < 0.5 * gap(source)
    with pytest.raises(ValueError, match="equal widths"):
        coral_transform(source, target[:, :2])
    with pytest.raises(ValueError, match="eps"):
        coral_transform(source, target, eps=0.0)


@pytest.fixture(scope="module")
def domains():
    """A small source (synthetic digits) and a target that differs: inverted-contrast digits."""
    from tlcourse.data import make_synthetic_digits

    X, y = make_synthetic_digits(192, seed=5, use_cache=False)
    return (X[:128], y[:128]), 1.0 - X[128:]


def _weights(backend, model):
    if backend is tt:
        return [p.detach().numpy().copy() for p in model.state_dict().values()]
    return [w.copy() for w in model.get_weights()]


# Keras traces a training step per method and model (seconds each): those cases are slow.
BACKENDS_SLOW_KERAS = pytest.mark.parametrize(
    "backend", [pytest.param(tt, id="torch"), pytest.param(tk, id="keras", marks=pytest.mark.slow)]
)


@BACKENDS_SLOW_KERAS
@pytest.mark.parametrize("method", METHODS)
def test_adapt_trains_with_every_method(backend, method, domains):
    (X_s, y_s), X_t = domains
    backend.set_seed(0)
    model = backend.build_digit_net(width=4)
    before = _weights(backend, model)
    history = backend.adapt(
        model, X_s, y_s, X_t, method=method, num_steps=6, batch_size=16, threshold=0.0, quiet=True
    )
    assert len(history["loss"]) == len(history["align"]) == 6
    assert np.all(np.isfinite(history["loss"]))
    changed = [not np.allclose(a, b) for a, b in zip(before, _weights(backend, model), strict=True)]
    assert all(changed[:3])  # block1's conv and BatchNorm moved
    if method == "source_only":
        assert history["align"] == [0.0] * 6
    else:
        assert all(a > 0 for a in history["align"])
    if method == "self_training":
        # threshold 0: every target image is pseudo-labelled.
        assert history["pseudo_fraction"] == [1.0] * 6
    extra = {"dann": "domain_accuracy", "self_training": "pseudo_fraction"}
    assert set(history) == {"loss", "align"} | ({extra[method]} if method in extra else set())
    if method == "dann":
        # A share of the step's 16 + 16 images told apart: a multiple of 1/32 in [0, 1].
        counts = np.array(history["domain_accuracy"]) * 32
        assert len(counts) == 6 and np.allclose(counts, np.round(counts), atol=1e-4)
        assert counts.min() >= 0 and counts.max() <= 32


@BACKENDS_SLOW_KERAS
def test_dann_domain_accuracy_rises_when_the_features_do_not_fight_back(backend, domains):
    """weight=0: no reversed gradient reaches the features, so the domain head learns to
    tell inverted images from the originals; its logged accuracy must show it (a flipped
    or mis-averaged accuracy would sit near 0 or 0.5)."""
    (X_s, y_s), _ = domains
    backend.set_seed(0)
    model = backend.build_digit_net(width=4)
    history = backend.adapt(
        model,
        X_s,
        y_s,
        1.0 - X_s,
        method="dann",
        weight=0.0,
        num_steps=40,
        batch_size=16,
        lr=1e-2,
        quiet=True,
    )
    acc = np.array(history["domain_accuracy"])
    assert acc[-10:].mean() > 0.9, acc


@BACKENDS_SLOW_KERAS
def test_source_only_never_looks_at_the_target(backend, domains):
    (X_s, y_s), X_t = domains
    results = []
    for target in (X_t, np.zeros_like(X_t)):
        backend.set_seed(0)
        model = backend.build_digit_net(width=4)
        backend.adapt(model, X_s, y_s, target, method="source_only", num_steps=4, quiet=True)
        results.append(_weights(backend, model))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_keras_adapt_repeats_exactly_on_a_reused_model(domains):
    """The cached step, reset optimiser and re-initialised domain head give a repeat run."""
    (X_s, y_s), X_t = domains
    tk.set_seed(0)
    model = tk.build_digit_net(width=4)
    start = model.get_weights()
    runs = []
    for _ in range(2):
        model.set_weights(start)
        history = tk.adapt(model, X_s, y_s, X_t, method="dann", num_steps=5, quiet=True, seed=3)
        runs.append((history["align"], model.get_weights()))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-5)
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", [tt, tk], ids=["torch", "keras"])
def test_adapt_rejects_bad_input(backend, domains):
    (X_s, y_s), X_t = domains
    model = backend.build_digit_net(width=4)
    with pytest.raises(ValueError, match="Unknown adaptation method"):
        backend.adapt(model, X_s, y_s, X_t, method="coral_closed_form")
    with pytest.raises(ValueError, match="same shape"):
        backend.adapt(model, X_s, y_s, X_t[:, :20, :20], method="mmd")
    with pytest.raises(ValueError, match="threshold"):
        backend.adapt(model, X_s, y_s, X_t, method="self_training", threshold=1.5)
    with pytest.raises(ValueError, match="weight"):
        backend.adapt(model, X_s, y_s, X_t, method="coral", weight=-1.0)


def test_torch_adapt_needs_features_and_a_head(domains):
    import torch

    (X_s, y_s), X_t = domains
    # One child only: there is no "everything but the last child" to take features from.
    model = torch.nn.Sequential(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)))
    with pytest.raises(ValueError, match="last child is the classifier head"):
        tt.adapt(model, X_s, y_s, X_t, method="coral", num_steps=1, quiet=True)


def test_adabn_sets_the_statistics_of_the_target_in_both_frameworks(domains):
    import torch

    _, X_t = domains
    tt.set_seed(0)
    model = tt.build_digit_net(width=4).eval()
    tt.adapt_batchnorm(model, X_t, batch_size=1000)
    with torch.no_grad():
        conv = model.block1.conv(torch.tensor(X_t[:, None]))
    torch.testing.assert_close(model.block1.bn.running_mean, conv.mean((0, 2, 3)))
    assert not model.training
    # Keras: the same, here with several batches (a running average).
    tk.set_seed(0)
    twin = tk.build_digit_net(width=4)
    tk.adapt_batchnorm(twin, 1.0 - X_t, batch_size=20)
    conv = twin.get_layer("block1").get_layer("conv")((1.0 - X_t)[..., None]).numpy()
    bn = twin.get_layer("block1").get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), conv.mean((0, 1, 2)), atol=1e-5)
    assert bn.momentum == pytest.approx(0.9)
    with pytest.raises(ValueError, match="no BatchNorm"):
        tt.adapt_batchnorm(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 2)), X_t)


@pytest.mark.slow
def test_run_adaptation_scores_every_method_and_seed(domains):
    (X_s, y_s), X_t = domains
    y_t = y_s[: len(X_t)]
    tt.set_seed(0)
    start = tt.build_digit_net(width=4)
    seen = []
    scores = {}

    def on_run_end(method, seed, model):
        seen.append((method, seed))
        # Recomputed independently from the trained model's logits.
        scores[method, seed] = np.mean(tt.predict(model, X_t).argmax(1) == y_t)

    methods = ["source_only", "adabn", "dann", "target_supervised"]
    acc = run_adaptation(
        tt,
        lambda: tt.clone_model(start),
        (X_s, y_s),
        (X_t, y_t),
        (X_t, y_t),
        methods,
        [0, 1],
        on_run_end=on_run_end,
        histories=(histories := {}),
        num_steps=3,
        quiet=True,
    )
    assert acc.shape == (2, 4)
    # Every run that trained left its per-step logs; AdaBN trains nothing.
    assert set(histories) == {(m, s) for m in methods if m != "adabn" for s in (0, 1)}
    assert all(len(h["loss"]) == 3 for h in histories.values())
    assert len(histories["dann", 1]["domain_accuracy"]) == 3
    # Every cell is the score of the run it belongs to (an unfilled zero would fail).
    expected = [[scores[m, s] for m in methods] for s in (0, 1)]
    np.testing.assert_allclose(acc, expected, atol=1e-6)
    assert seen[:4] == [("source_only", 0), ("adabn", 0), ("dann", 0), ("target_supervised", 0)]
    with pytest.raises(ValueError, match="Unknown adaptation method"):
        run_adaptation(tt, start, (X_s, y_s), (X_t, y_t), (X_t, y_t), ["dan"], [0])


@pytest.mark.slow
@pytest.mark.parametrize("backend", [tt, tk], ids=["torch", "keras"])
def test_adapt_steps_through_source_and_target_batches_in_the_drawn_order(backend, domains):
    """With a zero learning rate nothing moves but the BatchNorm statistics, so every
    step's MMD is a function of its two batches alone: recomputed from the batches drawn by
    hand (one source batch, then one target batch, per step, from one generator), it must
    match the history, step by step, in both frameworks."""
    (X_s, y_s), X_t = domains
    backend.set_seed(0)
    model = backend.build_digit_net(width=4)
    steps, size = 12, 16
    history = backend.adapt(
        model,
        X_s,
        y_s,
        X_t,
        method="mmd",
        num_steps=steps,
        batch_size=size,
        lr=0.0,
        seed=7,
        quiet=True,
    )
    rng = np.random.default_rng(7)
    sources, targets = batch_indices(rng, len(X_s), size), batch_indices(rng, len(X_t), size)
    expected = []
    for _ in range(steps):
        i_s, i_t = next(sources), next(targets)
        batch = np.concatenate([X_s[i_s], X_t[i_t]])
        f = _train_mode_features(backend, model, batch)
        expected.append(float(backend.mmd_loss(f[:size], f[size:])))
    np.testing.assert_allclose(history["align"], expected, rtol=2e-4, atol=1e-6)


def _train_mode_features(backend, model, X):
    """The features (output of the layer before the head) in training mode, as adapt sees
    them, without updating the BatchNorm statistics."""
    if backend is tt:
        import torch

        features = torch.nn.Sequential(*list(model.children())[:-1])
        features.train()
        momenta = [m.momentum for m in features.modules() if hasattr(m, "momentum")]
        for m in features.modules():
            if hasattr(m, "momentum"):
                m.momentum = 0.0
        with torch.no_grad():
            out = features(torch.as_tensor(X[:, None]))
        for m, value in zip(
            [m for m in features.modules() if hasattr(m, "momentum")], momenta, strict=True
        ):
            m.momentum = value
        return out
    import keras

    f = X[..., None]
    chain = [la for la in model.layers if not isinstance(la, keras.layers.InputLayer)]
    for layer in chain[:-1]:  # training=True uses batch statistics, as adapt does
        f = layer(f, training=True)
    return f
