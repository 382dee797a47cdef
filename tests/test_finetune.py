"""Freezing, per-block learning rates, L2-SP and the Keras compile cache, in both
frameworks; on the course's net and on ResNet-18 / MobileNetV2 built with weights=None."""

import numpy as np
import pytest
import torch

import tlcourse.keras as tk
import tlcourse.torch as tt
from tlcourse.augment import augment_digits
from tlcourse.finetune import discriminative_lrs
from tlcourse.keras.models import weights_by_path as _weights_by_path

# Bare `keras` is imported inside functions, after tlcourse.keras (see tlcourse.frameworks).
BACKENDS = pytest.mark.parametrize("backend", [tt, tk], ids=["torch", "keras"])
# The same, with the Keras case (seconds: it compiles its training step) marked slow.
BACKENDS_SLOW_KERAS = pytest.mark.parametrize(
    "backend", [pytest.param(tt, id="torch"), pytest.param(tk, id="keras", marks=pytest.mark.slow)]
)
BLOCKS = ["block1", "block2", "block3", "head"]


def state(backend, model) -> dict[str, np.ndarray]:
    """Every weight and statistic, by name, as NumPy copies."""
    if backend is tt:
        return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    return {k: np.array(w) for k, w in _weights_by_path(model).items()}


def block_of(name: str) -> str:
    return name.replace("/", ".").split(".")[0]


def is_bn_stat(name: str) -> bool:
    return any(s in name for s in ("running_", "moving_", "num_batches"))


def changed_blocks(before, after) -> set[str]:
    return {block_of(k) for k in before if not np.array_equal(before[k], after[k])}


@BACKENDS_SLOW_KERAS
def test_frozen_blocks_do_not_change_bitwise(backend, tiny_digits):
    (X, y), _ = tiny_digits
    backend.set_seed(0)
    model = backend.build_digit_net(width=4)
    backend.freeze(model, until="block2")
    before = state(backend, model)
    backend.fit(model, X, y, num_epochs=2, batch_size=32, lr=1e-2, quiet=True)
    after = state(backend, model)
    # Weights *and* BatchNorm statistics of block1-2 are bit for bit the same; the rest trained.
    assert changed_blocks(before, after) == {"block3", "head"}
    assert any(
        is_bn_stat(k) and block_of(k) == "block3" and not np.array_equal(before[k], after[k])
        for k in before
    )
    summary = backend.trainable_summary(model)
    assert list(summary.index) == BLOCKS
    assert summary.loc["block1", "trainable"] == 0 and summary.loc["head", "frozen"] == 0
    assert list(summary["batchnorm statistics"]) == ["fixed", "fixed", "updated", ""]
    assert summary["trainable"].sum() == backend.count_parameters(model)
    total = summary["trainable"].sum() + summary["frozen"].sum()
    assert total == backend.count_parameters(backend.build_digit_net(width=4))


def test_torch_requires_grad_alone_lets_batchnorm_statistics_move(tiny_digits):
    (X, y), _ = tiny_digits
    tt.set_seed(0)
    model = tt.build_digit_net(width=4)
    for p in model.block1.parameters():  # the usual, incomplete recipe
        p.requires_grad_(False)
    before = state(tt, model)
    tt.fit(model, X, y, num_epochs=1, quiet=True)
    after = state(tt, model)
    moved = {
        k for k in before if block_of(k) == "block1" and not np.array_equal(before[k], after[k])
    }
    assert moved and all(is_bn_stat(k) for k in moved)  # weights fixed, statistics not
    assert tt.trainable_summary(model).loc["block1", "batchnorm statistics"] == "updated"


@BACKENDS_SLOW_KERAS
def test_unfreeze_reverses_freeze(backend, tiny_digits):
    (X, y), _ = tiny_digits
    model = backend.build_digit_net(width=4)
    n_all = backend.count_parameters(model)
    backend.freeze(model)  # everything
    with pytest.raises(ValueError, match="frozen"):
        backend.fit(model, X, y, num_epochs=1, quiet=True)
    backend.unfreeze(model, down_to="block3")
    assert list(backend.trainable_summary(model)["batchnorm statistics"]) == [
        "fixed",
        "fixed",
        "updated",
        "",
    ]
    backend.unfreeze(model)
    assert backend.count_parameters(model) == n_all
    before = state(backend, model)
    backend.fit(model, X, y, num_epochs=1, quiet=True)
    assert changed_blocks(before, state(backend, model)) == set(BLOCKS)
    if backend is tt:
        model.eval()
        assert not model.block1.training and not model.block1.bn.training
        model.train()
        assert model.block1.bn.training  # no longer pinned to eval mode


@BACKENDS
def test_unknown_block_names_are_clear_errors(backend):
    model = backend.build_digit_net(width=4)
    for call in (
        lambda: backend.freeze(model, until="block9"),
        lambda: backend.unfreeze(model, down_to="fc"),
        lambda: backend.param_groups(model, {"block9": 1e-3}),
        lambda: backend.l2sp_penalty(model, model, exclude=["fc"]),
        lambda: backend.reset_parameters(model, ["classifier"]),
    ):
        with pytest.raises(ValueError, match="Valid blocks are"):
            call()
    with pytest.raises(ValueError, match="no learning rate"):
        backend.param_groups(model, {"head": 1e-2})
    with pytest.raises(ValueError, match="positive"):
        backend.param_groups(model, dict.fromkeys(BLOCKS, 0.0))
    backend.freeze(model, until="block3")  # frozen blocks need no rate
    groups = backend.param_groups(model, {"head": 1e-2})
    assert [g["name"] for g in groups] == ["head"]


@pytest.mark.parametrize(("top_lr", "factor"), [(0.0, 3.0), (-1e-2, 3.0), (1e-2, 0.5)])
def test_discriminative_lrs_refuses_a_bad_rate_or_factor(top_lr, factor):
    with pytest.raises(ValueError, match="Need top_lr > 0 and factor >= 1"):
        discriminative_lrs(BLOCKS, top_lr, factor)
    assert discriminative_lrs(BLOCKS, 1e-2, 1.0) == dict.fromkeys(BLOCKS, 1e-2)


def test_keras_blockwise_optimizer_refuses_variables_in_no_group():
    model = tk.build_digit_net(width=4)
    groups = tk.param_groups(model, dict.fromkeys(BLOCKS, 1e-3))
    optimizer = tk.BlockwiseAdamW([g for g in groups if g["name"] != "head"])
    with pytest.raises(ValueError, match="Variables without a learning rate group: .*head"):
        optimizer.build(model.trainable_variables)


def test_keras_reset_parameters_refuses_a_weight_without_an_initializer():
    import keras

    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.factor = self.add_weight(shape=(), initializer="ones", name="factor")

        def call(self, x):
            return x * self.factor

    inputs = keras.Input((4,))
    model = keras.Model(inputs, Scale(name="head")(keras.layers.Dense(4, name="body")(inputs)))
    tk.reset_parameters(model, ["body"])  # Dense has its initialisers
    with pytest.raises(ValueError, match="Cannot re-initialise head/factor"):
        tk.reset_parameters(model, ["head"])


@BACKENDS_SLOW_KERAS
def test_per_block_learning_rates_set_each_blocks_step(backend, tiny_digits):
    # Adam's first step moves every weight by about its learning rate (sign of the
    # gradient), so one full-batch step shows which rate each block got.
    (X, y), _ = tiny_digits
    backend.set_seed(0)
    model = backend.build_digit_net(width=4)
    lrs = discriminative_lrs(BLOCKS, 1e-2, 10)
    assert lrs == pytest.approx({"block1": 1e-5, "block2": 1e-4, "block3": 1e-3, "head": 1e-2})
    before = state(backend, model)
    backend.fit(
        model, X, y, num_epochs=1, batch_size=len(X), lr=lrs, schedule="constant", quiet=True
    )
    after = state(backend, model)
    for name in before:
        if is_bn_stat(name):
            continue
        step = np.abs(after[name] - before[name]).max()
        assert step == pytest.approx(lrs[block_of(name)], rel=0.02), name


@BACKENDS
def test_l2sp_penalty_matches_numpy(backend):
    backend.set_seed(1)
    reference = backend.build_digit_net(width=4)
    model = backend.build_digit_net(width=4)
    backend.freeze(model, until="block1")
    ref, cur = state(backend, reference), state(backend, model)
    trainable = [k for k in cur if not is_bn_stat(k) and block_of(k) != "block1"]
    expected_sp = sum(
        (0.5 * 0.1 * ((cur[k] - ref[k]) ** 2).sum())
        if block_of(k) != "head"
        else 0.5 * 0.3 * (cur[k] ** 2).sum()
        for k in trainable
    )
    expected_l2 = sum(0.5 * 0.1 * (cur[k] ** 2).sum() for k in trainable)

    def as_float(t):
        return float(t.detach()) if backend is tt else float(np.asarray(t))

    sp = backend.l2sp_penalty(model, reference, alpha=0.1, beta=0.3, exclude=["head"])
    assert as_float(sp) == pytest.approx(expected_sp, rel=1e-5)
    l2 = backend.l2sp_penalty(model, None, alpha=0.1)
    assert as_float(l2) == pytest.approx(expected_l2, rel=1e-5)
    # At the reference only the new head is penalised.
    assert as_float(backend.l2sp_penalty(reference, reference, beta=0.3, exclude=["head"])) == (
        pytest.approx(
            sum(0.15 * (ref[k] ** 2).sum() for k in ref if block_of(k) == "head"), rel=1e-5
        )
    )
    with pytest.raises(ValueError, match="no reference value"):
        backend.l2sp_penalty(model, backend.build_digit_net(width=8))


@BACKENDS_SLOW_KERAS
def test_l2sp_in_fit_keeps_weights_near_the_reference(backend, tiny_digits):
    (X, y), _ = tiny_digits
    distances = {}
    for alpha in (0.0, 10.0):
        backend.set_seed(0)
        reference = backend.build_digit_net(width=4)
        model = backend.clone_model(reference)
        ref_state = reference.state_dict() if backend is tt else reference

        def penalty(m, ref_state=ref_state, alpha=alpha):
            return backend.l2sp_penalty(m, ref_state, alpha=alpha, beta=0.0, exclude=["head"])

        backend.fit(model, X, y, num_epochs=2, lr=1e-2, penalty=penalty, quiet=True)
        a, r = state(backend, model), state(backend, reference)
        distances[alpha] = sum(
            ((a[k] - r[k]) ** 2).sum() for k in a if not is_bn_stat(k) and block_of(k) != "head"
        )
    assert distances[10.0] < 0.2 * distances[0.0]


@pytest.mark.slow
def test_keras_fit_reuses_the_compiled_step_with_identical_results(tiny_digits):
    (X, y), _ = tiny_digits
    tk.set_seed(3)
    initial = tk.build_digit_net(width=4)
    fresh = tk.clone_model(initial)
    tk.fit(fresh, X, y, num_epochs=2, batch_size=64, seed=5, quiet=True)
    reused = tk.clone_model(tk.build_digit_net(width=4))
    # Other weights, and another rate, length and schedule: all are variables of the step.
    tk.fit(
        reused, X, y, num_epochs=3, batch_size=64, lr=1e-2, schedule="constant", seed=9, quiet=True
    )
    train_function = reused.train_function
    reused.set_weights(initial.get_weights())
    tk.fit(reused, X, y, num_epochs=2, batch_size=64, seed=5, quiet=True)
    assert reused.train_function is train_function  # not traced again
    for a, b in zip(reused.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    tk.freeze(reused, until="block1")  # a change of trainable weights recompiles
    tk.fit(reused, X, y, num_epochs=2, batch_size=64, seed=5, quiet=True)
    assert reused.train_function is not train_function


@BACKENDS
def test_reset_parameters_redraws_the_head_only(backend):
    model = backend.build_digit_net(width=4)
    before = state(backend, model)
    backend.set_seed(0)
    backend.reset_parameters(model, ["head"])
    once = state(backend, model)
    assert changed_blocks(before, once) == {"head"}
    backend.set_seed(0)
    backend.reset_parameters(model, ["head"])
    assert all(np.array_equal(once[k], v) for k, v in state(backend, model).items())


@pytest.mark.slow
def test_torch_helpers_on_resnet18():
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=5)
    tt.freeze(model, until="layer2")
    summary = tt.trainable_summary(model)
    assert list(summary.index)[:2] == ["conv1", "bn1"] and summary.index[-1] == "fc"
    assert summary.loc["layer2", "trainable"] == 0 and summary.loc["layer3", "frozen"] == 0
    assert summary.loc["layer1", "batchnorm statistics"] == "fixed"
    assert summary.loc["layer4", "batchnorm statistics"] == "updated"
    groups = tt.param_groups(model, {"layer3": 1e-4, "layer4": 1e-3, "fc": 1e-2})
    assert sum(p.numel() for g in groups for p in g["params"]) == tt.count_parameters(model)
    model.train()
    assert not model.layer1[0].bn1.training and model.layer3[0].bn1.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(groups)
    loss = model(torch.randn(4, 3, 64, 64)).logsumexp(1).mean()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("layer1", "bn1")))
    assert not torch.equal(before["layer3.0.bn1.running_mean"], after["layer3.0.bn1.running_mean"])
    penalty = tt.l2sp_penalty(model, before, exclude=["fc"])
    assert penalty.item() > 0 and penalty.requires_grad


@pytest.mark.slow
def test_keras_helpers_on_mobilenetv2():
    import keras

    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(64, 64, 3))
    names = tk.block_names(base)
    tk.freeze(base, until="block_3_project_BN")
    summary = tk.trainable_summary(base)
    assert summary.loc["Conv1", "trainable"] == 0 and summary.loc["bn_Conv1", "frozen"] == 64
    assert summary.loc["bn_Conv1", "batchnorm statistics"] == "fixed"
    assert summary.loc["Conv_1_bn", "batchnorm statistics"] == "updated"
    assert summary["trainable"].sum() == tk.count_parameters(base)
    frozen = names[: names.index("block_3_project_BN") + 1]
    groups = tk.param_groups(
        base, {n: 1e-3 for n in names if n not in frozen and base.get_layer(n).trainable_weights}
    )
    assert sum(len(g["variables"]) for g in groups) == len(base.trainable_weights)
    assert float(np.asarray(tk.l2sp_penalty(base, base, exclude=[]))) == 0.0
    with pytest.raises(ValueError, match="Valid blocks are"):
        tk.freeze(base, until="layer4")


def test_augment_digits(tiny_digits):
    (X, _), _ = tiny_digits
    A = augment_digits(X[:20], copies=3, seed=4)
    assert A.shape == (60, 28, 28) and A.dtype == np.float32
    assert A.min() >= 0 and A.max() <= 1
    np.testing.assert_array_equal(A, augment_digits(X[:20], copies=3, seed=4))
    assert not np.array_equal(A, augment_digits(X[:20], copies=3, seed=5))
    assert not np.allclose(A[:20], X[:20])
    # An affine copy keeps about the same amount of ink (scale is within 10%).
    ratio = A.reshape(3, 20, -1).sum(-1) / X[:20].reshape(20, -1).sum(-1)
    assert np.all((ratio > 0.7) & (ratio < 1.3))
    with pytest.raises(ValueError, match="copies"):
        augment_digits(X[:2], copies=0)
    with pytest.raises(ValueError, match="28, 28"):
        augment_digits(X[:2, :14], copies=1)


@pytest.mark.slow
@BACKENDS
def test_freeze_batchnorm_keeps_every_bn_layer_as_pretrained(backend, tiny_digits):
    (X, y), _ = tiny_digits
    backend.set_seed(0)
    model = backend.freeze_batchnorm(backend.build_digit_net(width=4))
    assert list(backend.trainable_summary(model)["batchnorm statistics"]) == ["fixed"] * 3 + [""]
    before = state(backend, model)
    backend.fit(model, X, y, num_epochs=1, quiet=True)
    after = state(backend, model)
    bn = [k for k in before if "bn" in k]
    assert bn and all(np.array_equal(before[k], after[k]) for k in bn)
    assert changed_blocks({k: before[k] for k in before if k not in bn}, after) == set(BLOCKS)
    backend.unfreeze(model)
    assert list(backend.trainable_summary(model)["batchnorm statistics"]) == ["updated"] * 3 + [""]


@BACKENDS_SLOW_KERAS
def test_gradual_unfreezing_trains_one_more_block_per_stage(backend, tiny_digits):
    (X, y), _ = tiny_digits
    backend.set_seed(0)
    model = backend.build_digit_net(width=4)
    before = state(backend, model)
    history = backend.fit_gradual_unfreezing(
        model, X, y, stages=["head", "block3"], epochs_per_stage=1, quiet=True
    )
    assert len(history["loss"]) == 2
    assert changed_blocks(before, state(backend, model)) == {"block3", "head"}
    assert backend.trainable_summary(model).loc["block2", "trainable"] == 0
    with pytest.raises(ValueError, match="Valid blocks are"):
        backend.fit_gradual_unfreezing(model, X, y, stages=["fc"], quiet=True)
    if backend is tk:  # a second call reuses each stage's compiled step
        views = dict(model._tlcourse_stage_views)
        functions = {stage: view.train_function for stage, view in views.items()}
        backend.fit_gradual_unfreezing(
            model, X, y, stages=["head", "block3"], epochs_per_stage=1, quiet=True
        )
        assert all(views[s].train_function is f for s, f in functions.items())


def test_strategy_rejects_contradictions():
    from tlcourse.finetune import Strategy

    with pytest.raises(ValueError, match="penalty"):
        Strategy(penalty="l1")
    with pytest.raises(ValueError, match="from_scratch"):
        Strategy(from_scratch=True, penalty="l2sp")
    with pytest.raises(ValueError, match="gradual"):
        Strategy(gradual=True, freeze_until="block1")


@pytest.mark.slow
@BACKENDS
def test_fine_tune_applies_each_strategy(backend, tiny_digits):
    from tlcourse.finetune import Strategy, fine_tune

    (X, y), _ = tiny_digits
    backend.set_seed(0)
    source = backend.build_digit_net(width=4)
    model = backend.clone_model(source)
    recipe = dict(seed=1, num_epochs=2, batch_size=64, lr=1e-2)
    src = state(backend, source)
    fine_tune(backend, model, source, X, y, Strategy(freeze_until="block2"), **recipe)
    assert changed_blocks(src, state(backend, model)) == {"block3", "head"}
    once = state(backend, model)
    # Reusing the model object gives the same result: it is reset to the source first.
    fine_tune(backend, model, source, X, y, Strategy(freeze_until="block2"), **recipe)
    again = state(backend, model)
    assert all(np.allclose(once[k], again[k], atol=1e-6) for k in once)
    fine_tune(backend, model, source, X, y, Strategy(penalty="l2sp", alpha=1.0), **recipe)
    assert changed_blocks(src, state(backend, model)) == set(BLOCKS)
    fine_tune(backend, model, source, X, y, Strategy(from_scratch=True), **recipe)
    assert np.array_equal(
        state(backend, source)["block1" + (".conv.weight" if backend is tt else "/conv/kernel")],
        src["block1" + (".conv.weight" if backend is tt else "/conv/kernel")],
    )


@pytest.mark.slow
def test_run_strategies_shapes_and_repeatability(tiny_digits):
    from tlcourse.data import make_few_shot_split
    from tlcourse.experiments import run_strategies
    from tlcourse.finetune import Strategy, fine_tune

    (X, y), (X_test, y_test) = tiny_digits
    tt.set_seed(0)
    source = tt.build_digit_net(width=4)
    strategies = {"head": Strategy(freeze_until="block3"), "gradual": Strategy(gradual=True)}
    kwargs = dict(
        k_per_class=3,
        seeds=[0, 1],
        test_per_class=5,
        num_epochs=4,
        batch_size=16,
        lr=1e-2,
        quiet=True,
        extra_test_sets={"other": (X_test, y_test)},
    )
    out = run_strategies(tt, source, strategies, X, y, **kwargs)
    assert set(out) == set(strategies) and out["head"].shape == (2, 2)
    # One cell repeated by hand: "head", seed 1, on a fresh copy of the source.
    split = make_few_shot_split(y, 3, seed=1, test_per_class=5)
    model = fine_tune(
        tt,
        tt.clone_model(source),
        source,
        X[split.train],
        y[split.train],
        strategies["head"],
        seed=1,
        num_epochs=4,
        batch_size=16,
        lr=1e-2,
    )
    expected = [
        tt.evaluate(model, X[split.test], y[split.test])["accuracy"],
        tt.evaluate(model, X_test, y_test)["accuracy"],
    ]
    np.testing.assert_allclose(out["head"][1], expected)
    again = run_strategies(tt, source, strategies, X, y, augment_copies=0, **kwargs)
    np.testing.assert_array_equal(out["gradual"], again["gradual"])
    with pytest.raises(ValueError, match="non-empty"):
        run_strategies(tt, source, {}, X, y, k_per_class=1, seeds=[0])


@pytest.mark.slow
def test_run_transferability_shapes(tiny_digits, recorded_scores):
    from tlcourse.data import make_few_shot_split
    from tlcourse.experiments import TRANSFER_VARIANTS, run_transferability

    (X, y), _ = tiny_digits
    recipe = dict(num_epochs=1, batch_size=32, lr=1e-2)
    scores = recorded_scores(tt)
    base_b, transfer = run_transferability(
        tt,
        X,
        y,
        classes_a=[0, 1, 2],
        classes_b=[3, 4],
        k_per_class_b=5,
        seeds=[0],
        base_recipe=recipe,
        recipe=recipe,
        width=4,
        test_per_class=5,
        quiet=True,
    )
    assert base_b.shape == (1,) and transfer.shape == (1, 3, len(TRANSFER_VARIANTS))
    # baseB, then every (block, variant) in order: each cell holds the accuracy of the network
    # trained for it (recomputed from its logits), scored on task B's test set relabelled 0/1.
    assert len(scores) == 1 + transfer[0].size
    np.testing.assert_allclose(
        np.concatenate([base_b, transfer.ravel()]), [acc for _, acc in scores], atol=1e-6
    )
    test_b = make_few_shot_split(y, 5, seed=0, test_per_class=5, classes=[3, 4]).test
    for labels, _ in scores:
        np.testing.assert_array_equal(labels, (y[test_b] == 4).astype(labels.dtype))
    with pytest.raises(ValueError, match="overlap"):
        run_transferability(
            tt,
            X,
            y,
            classes_a=[0, 1],
            classes_b=[1, 2],
            k_per_class_b=1,
            seeds=[0],
            base_recipe=recipe,
            recipe=recipe,
        )


def test_penalties_of_one_strategy_are_equal_values_so_keras_keeps_its_step(tiny_digits):
    from tlcourse.finetune import Penalty, Strategy, _penalty

    (X, y), _ = tiny_digits
    source = tk.build_digit_net(width=4)
    model = tk.clone_model(source)
    strategy = Strategy(penalty="l2sp", alpha=0.5)
    a, b = _penalty(tk, model, source, strategy), _penalty(tk, model, source, strategy)
    assert a is not b and a == b
    assert a != _penalty(tk, model, source, Strategy(penalty="l2sp", alpha=0.1))
    assert a != _penalty(tk, model, tk.clone_model(source), strategy)  # another reference
    assert _penalty(tk, model, source, Strategy()) is None
    assert Penalty(tk, None, 0.5, ("head",)) == _penalty(
        tk, model, source, Strategy(penalty="l2", alpha=0.5)
    )
    # The value is the L2-SP penalty itself.
    expected = tk.l2sp_penalty(model, source, alpha=0.5, beta=0.5, exclude=["head"])
    assert float(a(model)) == pytest.approx(float(expected))
    tk.fit(model, X, y, num_epochs=1, batch_size=64, penalty=a, quiet=True)
    step = model.train_function
    tk.fit(model, X, y, num_epochs=1, batch_size=64, penalty=b, quiet=True)
    assert model.train_function is step


@BACKENDS
def test_head_init_draws_either_frameworks_default(backend):
    from tlcourse.finetune import Strategy, head_init_values

    model = backend.build_digit_net(width=4)
    fan_in, fan_out = backend.head_shape(model)
    assert (fan_in, fan_out) == (16, 10)
    limits = {"pytorch": 1 / np.sqrt(16), "keras": np.sqrt(6 / 26)}
    for kind, limit in limits.items():
        backend.set_seed(0)
        W, b = head_init_values(kind, fan_in, fan_out)
        backend.set_seed(0)
        again = head_init_values(kind, fan_in, fan_out)
        np.testing.assert_array_equal(W, again[0])
        assert W.shape == (16, 10) and b.shape == (10,)
        assert 0.8 * limit < np.abs(W).max() <= limit
        assert (b == 0).all() if kind == "keras" else 0 < np.abs(b).max() <= limit
        backend.set_head(model, W, b)
        X = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
        body = backend.extract_features(model, X)  # the head's input
        expected = body @ W + b
        np.testing.assert_allclose(backend.predict(model, X), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="Unknown head_init"):
        Strategy(head_init="glorot")
    with pytest.raises(ValueError, match="Unknown head_init"):
        head_init_values("torch", 16, 10)


@BACKENDS_SLOW_KERAS
def test_keep_head_starts_from_the_source_head_and_a_new_head_does_not(
    backend, tiny_digits, monkeypatch
):
    from tlcourse.finetune import Strategy, fine_tune

    (X, y), _ = tiny_digits
    backend.set_seed(0)
    source = backend.build_digit_net(width=4)
    src = state(backend, source)
    started = {}

    def record(model, *args, **kwargs):  # in place of fit: what training would start from
        started[len(started)] = state(backend, model)

    recipe = dict(seed=1, num_epochs=1, batch_size=64, lr=1e-2)
    monkeypatch.setattr(backend, "fit", record)
    for strategy in (Strategy(), Strategy(keep_head=True)):
        fine_tune(backend, backend.clone_model(source), source, X, y, strategy, **recipe)
    assert changed_blocks(src, started[0]) == {"head"}  # a new head, the body as pretrained
    assert changed_blocks(src, started[1]) == set()  # everything as pretrained
    with pytest.raises(ValueError, match="keep_head"):
        Strategy(keep_head=True, from_scratch=True)
    with pytest.raises(ValueError, match="keep_head"):
        Strategy(keep_head=True, head_init="keras")
