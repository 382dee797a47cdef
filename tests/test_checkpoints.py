"""Saving, restoring, partial restores and cross-framework ports."""

import numpy as np
import pytest
import torch

import tlcourse.keras as tk
import tlcourse.torch as tt
from tlcourse.keras.models import weights_by_path
from tlcourse.keras.optim import make_optimizer
from tlcourse.restore import CheckpointError, check_exclusions, match_entries


def _params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- the framework-free matching rule ---------------------------------------------------


def test_match_entries_sorts_every_entry():
    model = {"a.w": (2, 3), "a.b": (2,), "head.w": (10, 2), "new.w": (4,)}
    ckpt = {"a.w": (2, 3), "a.b": (3,), "head.w": (5, 2), "old.w": (1,)}
    report = match_entries(model, ckpt, exclude=["head"], sep=".")
    assert report.loaded == ["a.w"]
    assert report.skipped == ["head.w"]
    assert report.missing == ["new.w"]
    assert report.mismatched == {"a.b": ((3,), (2,))}
    assert report.unexpected == ["old.w"]
    assert "a.b: checkpoint (3,) vs model (2,)" in report.summary()


def test_match_entries_refuses_a_checkpoint_that_matches_nothing():
    with pytest.raises(CheckpointError, match="matches none"):
        match_entries({"a": (1,)}, {"b": (1,)}, exclude=[], sep=".")


def test_exclusion_prefix_does_not_catch_longer_names():
    report = match_entries(
        {"head.w": (1,), "header.w": (1,)},
        {"head.w": (1,), "header.w": (1,)},
        exclude=["head"],
        sep=".",
    )
    assert report.skipped == ["head.w"] and report.loaded == ["header.w"]


def test_check_exclusions_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown name\(s\) to exclude: \['fc'\]. Valid names"):
        check_exclusions(["fc"], ["block1", "head"])
    assert check_exclusions("head", ["head"]) == ["head"]


# --- PyTorch ------------------------------------------------------------------------------


def test_torch_save_and_load_round_trip(tmp_path):
    model = tt.build_digit_net(width=4)
    path = tt.save_checkpoint(tmp_path / "m.pt", model, epoch=3, history={"loss": [1.0]})
    other = tt.build_digit_net(width=4)
    meta = tt.load_checkpoint(path, other)
    assert meta == {"epoch": 3, "history": {"loss": [1.0]}}
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])
    assert not list(tmp_path.glob("*.tmp"))


def test_torch_corrupted_checkpoint_gives_clear_error_and_changes_nothing(tmp_path):
    model = tt.build_digit_net(width=4)
    good = tt.save_checkpoint(tmp_path / "good.pt", model)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    target = tt.build_digit_net(width=4)
    before = _params(target)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        tt.load_checkpoint(bad, target)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        tt.load_matching(target, bad)
    for k, v in target.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(FileNotFoundError):
        tt.load_checkpoint(tmp_path / "missing.pt", target)


def test_torch_full_load_of_another_architecture_changes_nothing(tmp_path):
    path = tt.save_checkpoint(tmp_path / "m.pt", tt.build_digit_net(width=4, num_classes=5))
    target = tt.build_digit_net(width=4)
    before = _params(target)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        tt.load_checkpoint(path, target)
    for k, v in target.state_dict().items():
        assert torch.equal(v, before[k])


def test_torch_load_matching_new_head(tmp_path):
    source = tt.build_digit_net(width=4, num_classes=10)
    target = tt.build_digit_net(width=4, num_classes=5)
    head_before = target.head.weight.clone()
    report = tt.load_matching(target, source.state_dict())
    assert set(report.mismatched) == {"head.weight", "head.bias"}
    assert torch.equal(target.block1.conv.weight, source.block1.conv.weight)
    assert torch.equal(target.head.weight, head_before)
    report = tt.load_matching(target, source.state_dict(), exclude=["head", "block3.bn"])
    assert report.skipped == [
        "block3.bn.weight",
        "block3.bn.bias",
        "block3.bn.running_mean",
        "block3.bn.running_var",
        "block3.bn.num_batches_tracked",
        "head.weight",
        "head.bias",
    ]
    assert not report.mismatched


def test_torch_load_matching_errors():
    model = tt.build_digit_net(width=4)
    with pytest.raises(ValueError, match=r"\['fc'\]. Valid names are: \['block1'"):
        tt.load_matching(model, model.state_dict(), exclude=["fc"])
    with pytest.raises(CheckpointError, match="matches none"):
        tt.load_matching(model, {"fc.weight": torch.zeros(3)})


def test_torch_partial_restore_on_resnet18():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    source = resnet18(weights=None)  # stands in for ImageNet weights, which need a download
    target = resnet18(weights=None, num_classes=7)
    fc_before = target.fc.weight.clone()
    report = tt.load_matching(target, source.state_dict(), exclude=["fc"])
    assert report.skipped == ["fc.weight", "fc.bias"]
    assert not report.mismatched and not report.missing
    assert report.unexpected == []
    assert len(report.loaded) == len(source.state_dict()) - 2
    assert torch.equal(target.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert torch.equal(target.fc.weight, fc_before)


# --- Keras --------------------------------------------------------------------------------


def test_keras_save_and_load_round_trip_and_corruption(tmp_path):
    model = tk.build_digit_net(width=4)
    path = tk.save_checkpoint(tmp_path / "m.weights.h5", model)
    other = tk.build_digit_net(width=4)
    tk.load_checkpoint(path, other)
    for a, b in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(path.read_bytes()[:1000])
    target = tk.build_digit_net(width=4)
    before = target.get_weights()
    with pytest.raises(CheckpointError, match="could not be loaded"):
        tk.load_checkpoint(bad, target)
    for a, b in zip(before, target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="must end in '.weights.h5'"):
        tk.save_checkpoint(tmp_path / "m.h5", model)


def test_keras_load_matching_by_layer_path(tmp_path):
    source = tk.build_digit_net(width=4, num_classes=10)
    target = tk.build_digit_net(width=4, num_classes=5)
    report = tk.load_matching(target, source, exclude=["head"])
    assert report.skipped == ["head/kernel", "head/bias"]
    assert not report.mismatched and not report.missing
    np.testing.assert_array_equal(
        target.get_layer("block2").get_layer("conv").get_weights()[0],
        source.get_layer("block2").get_layer("conv").get_weights()[0],
    )
    report = tk.load_matching(target, source)
    assert set(report.mismatched) == {"head/kernel", "head/bias"}
    source.save(tmp_path / "source.keras")
    report = tk.load_matching(target, tmp_path / "source.keras", exclude=["block1/bn", "head"])
    assert "block1/bn/gamma" in report.skipped and "block1/conv/kernel" in report.loaded
    with pytest.raises(ValueError, match=r"\['fc'\]. Valid names are: \['block1', 'block1/conv'"):
        tk.load_matching(target, source, exclude=["fc"])
    with pytest.raises(CheckpointError, match="matches none"):
        tk.load_matching(target, {"x/kernel": np.zeros(3)})


@pytest.mark.slow
def test_keras_partial_restore_on_mobilenetv2():
    import keras

    source = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=10)
    target = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3), classes=4)
    report = tk.load_matching(target, source, exclude=["predictions"])
    assert report.skipped == ["predictions/kernel", "predictions/bias"]
    assert not report.mismatched and not report.missing
    np.testing.assert_array_equal(
        target.get_layer("Conv_1").get_weights()[0], source.get_layer("Conv_1").get_weights()[0]
    )


# --- both halves: the file save_checkpoint writes is what load_matching reads ------------

SUFFIX = {"torch": ".pt", "keras": ".weights.h5"}
HALVES = {"torch": tt, "keras": tk}


def _weights(backend, model) -> dict[str, np.ndarray]:
    if backend is tt:
        return {k: v.numpy().copy() for k, v in model.state_dict().items()}
    return {k: np.array(w) for k, w in weights_by_path(model).items()}


@pytest.mark.parametrize("name", ["torch", "keras"])
def test_load_matching_restores_from_the_saved_checkpoint_file(tmp_path, name):
    backend = HALVES[name]
    backend.set_seed(1)
    source = backend.build_digit_net(width=4, num_classes=10)
    path = backend.save_checkpoint(tmp_path / f"source{SUFFIX[name]}", source, epoch=2)
    backend.set_seed(2)
    target = backend.build_digit_net(width=4, num_classes=5)
    before = _weights(backend, target)
    report = backend.load_matching(target, path, exclude=["head"])
    sep = "." if name == "torch" else "/"
    head = (
        [f"head{sep}weight", f"head{sep}bias"] if name == "torch" else ["head/kernel", "head/bias"]
    )
    assert report.skipped == head
    assert not report.mismatched and not report.missing
    assert report.unexpected == []
    after, src = _weights(backend, target), _weights(backend, source)
    assert sorted(report.loaded) == sorted(k for k in after if k not in head)
    for k in report.loaded:
        np.testing.assert_array_equal(after[k], src[k])
    for k in head:  # skipped: untouched, and different from the source's
        np.testing.assert_array_equal(after[k], before[k])
    # Without the exclusion, the 10-class head is reported as a shape mismatch, not loaded.
    report = backend.load_matching(backend.build_digit_net(width=4, num_classes=5), path)
    assert sorted(report.mismatched) == sorted(head)
    assert report.mismatched[head[-1]] == ((10,), (5,))


@pytest.mark.parametrize("name", ["torch", "keras"])
def test_checkpoint_api_is_the_same_in_both_halves(tmp_path, name):
    backend = HALVES[name]
    model = backend.build_digit_net(width=4)
    path = backend.save_checkpoint(tmp_path / f"m{SUFFIX[name]}", model, epoch=3, note="x")
    assert path == tmp_path / f"m{SUFFIX[name]}" and path.exists()
    other = backend.build_digit_net(width=4)
    assert backend.load_checkpoint(path, other) == {"epoch": 3, "note": "x"}
    for k, v in _weights(backend, model).items():
        np.testing.assert_array_equal(_weights(backend, other)[k], v)
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        backend.load_matching(other, tmp_path / f"missing{SUFFIX[name]}")
    with pytest.raises(CheckpointError, match="no optimizer state"):
        backend.load_checkpoint(path, other, _optimizer(backend, other))


def _optimizer(backend, model):
    if backend is tt:
        return torch.optim.AdamW(model.parameters(), lr=1e-3)
    import keras

    return keras.optimizers.AdamW(learning_rate=1e-3)


def test_keras_checkpoint_restores_optimizer_state(tiny_digits, tmp_path):
    (X, y), _ = tiny_digits
    model = tk.build_digit_net(width=4)
    tk.fit(model, X, y, num_epochs=1, quiet=True)
    path = tk.save_checkpoint(tmp_path / "m.weights.h5", model, model.optimizer, epoch=1)
    other = tk.build_digit_net(width=4)
    optimizer = make_optimizer(other, 3e-3, "cosine", -(-len(X) // 128), 0.0)  # as fit's
    assert tk.load_checkpoint(path, other, optimizer) == {"epoch": 1}
    saved = [np.array(v) for v in model.optimizer.variables]
    restored = [np.array(v) for v in optimizer.variables]
    assert len(saved) == len(restored) and int(saved[0]) > 0  # the step count
    for a, b in zip(saved, restored, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="carries its own learning-rate schedule"):
        tk.save_checkpoint(tmp_path / "n.weights.h5", model, model.optimizer, object())


def test_keras_load_matching_reads_a_plain_save_weights_file(tmp_path):
    source = tk.build_digit_net(width=4, num_classes=10)
    source.save_weights(tmp_path / "plain.weights.h5")
    wider = tk.build_digit_net(width=8, num_classes=10)
    report = tk.load_matching(wider, tmp_path / "plain.weights.h5")
    assert report.loaded == ["head/bias"]  # the only weight whose shape does not change
    assert report.mismatched["block1/conv/kernel"] == ((3, 3, 1, 4), (3, 3, 1, 8))
    assert len(report.mismatched) == len(report.loaded) + len(report.mismatched) - 1


# --- porting between frameworks ----------------------------------------------------------


@pytest.mark.slow
def test_port_digit_net_both_ways(tiny_digits):
    (X, y), _ = tiny_digits
    tt.set_seed(0)
    torch_model = tt.build_digit_net(width=8)
    tt.fit(torch_model, X, y, num_epochs=1, quiet=True)  # non-trivial BN statistics
    keras_model = tk.build_digit_net(width=8)
    tt.port_to_keras(torch_model, keras_model)
    np.testing.assert_allclose(
        tk.predict(keras_model, X), tt.predict(torch_model, X), atol=1e-4, rtol=1e-5
    )
    back = tt.build_digit_net(width=8)
    tk.port_to_torch(keras_model, back)
    for k, v in torch_model.state_dict().items():
        if "num_batches" not in k:
            torch.testing.assert_close(back.state_dict()[k], v, rtol=0, atol=0)


def test_port_handles_flatten_order():
    import keras
    from torch import nn

    torch_model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 14 * 14, 5),
    )
    keras_model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(3, 3, padding="same"),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(5),
        ]
    )
    X = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    tt.port_to_keras(torch_model, keras_model)
    np.testing.assert_allclose(tk.predict(keras_model, X), tt.predict(torch_model, X), atol=1e-5)
    fresh = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 14 * 14, 5),
    )
    tk.port_to_torch(keras_model, fresh)
    torch.testing.assert_close(fresh[4].weight, torch_model[4].weight, rtol=0, atol=0)


def test_port_refuses_different_architectures():
    with pytest.raises(ValueError, match="same layers in the same order"):
        tt.port_to_keras(
            tt.build_digit_net(width=4), tk.build_digit_net(width=4).get_layer("block1")
        )
    with pytest.raises(ValueError, match="weight shapes"):
        tt.port_to_keras(tt.build_digit_net(width=4), tk.build_digit_net(width=8))


# --- resuming an interrupted run ----------------------------------------------------------


class Interrupt(Exception):
    pass


def _interrupt_after_second_epoch(epoch, logs):
    if epoch == 1:
        raise Interrupt


@pytest.mark.slow
@pytest.mark.parametrize(
    ("backend", "checkpoint"), [(tt, "run.pt"), (tk, "backup")], ids=["torch", "keras"]
)
def test_resume_matches_an_uninterrupted_run(backend, checkpoint, tmp_path, tiny_digits):
    (X, y), _ = tiny_digits
    recipe = dict(num_epochs=4, batch_size=32, quiet=True)
    backend.set_seed(0)
    straight = backend.build_digit_net(width=4)
    h_straight = backend.fit(straight, X, y, **recipe)
    backend.set_seed(0)
    with pytest.raises(Interrupt):
        backend.fit(
            backend.build_digit_net(width=4),
            X,
            y,
            checkpoint_path=tmp_path / checkpoint,
            on_epoch_end=_interrupt_after_second_epoch,
            **recipe,
        )
    backend.set_seed(99)  # a fresh process would start from another initialisation
    resumed = backend.build_digit_net(width=4)
    h_resumed = backend.fit(resumed, X, y, checkpoint_path=tmp_path / checkpoint, **recipe)
    np.testing.assert_allclose(h_resumed["loss"], h_straight["loss"], rtol=1e-6)
    np.testing.assert_allclose(backend.predict(resumed, X), backend.predict(straight, X), atol=1e-5)
    # Called again on the finished run: restores it and trains nothing more.
    backend.set_seed(7)
    again = backend.build_digit_net(width=4)
    h_again = backend.fit(again, X, y, checkpoint_path=tmp_path / checkpoint, **recipe)
    assert h_again == h_resumed
    np.testing.assert_array_equal(backend.predict(again, X), backend.predict(resumed, X))


@pytest.mark.slow
def test_torch_resume_is_bitwise_and_refuses_another_plan(tmp_path, tiny_digits):
    (X, y), _ = tiny_digits
    tt.set_seed(0)
    straight = tt.build_digit_net(width=4)
    h_straight = tt.fit(straight, X, y, num_epochs=3, quiet=True)
    tt.set_seed(0)
    with pytest.raises(Interrupt):
        tt.fit(
            tt.build_digit_net(width=4),
            X,
            y,
            num_epochs=3,
            quiet=True,
            checkpoint_path=tmp_path / "r.pt",
            on_epoch_end=_interrupt_after_second_epoch,
        )
    resumed = tt.build_digit_net(width=4)
    assert tt.fit(resumed, X, y, num_epochs=3, quiet=True, checkpoint_path=tmp_path / "r.pt") == (
        h_straight
    )
    np.testing.assert_array_equal(tt.predict(resumed, X), tt.predict(straight, X))
    with pytest.raises(ValueError, match="cannot resume it as a 5-epoch run"):
        tt.fit(resumed, X, y, num_epochs=5, quiet=True, checkpoint_path=tmp_path / "r.pt")
