"""Every function that takes a model works on real architectures, used the way their
own tutorials use them: torchvision's ResNet-18 and MobileNetV3, and a
``keras.applications`` base nested in a functional model (``base(inputs, training=False)``)
or in a ``Sequential``. All built with ``weights=None`` on small RGB inputs (offline)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

N, SIZE, CLASSES = 24, 32, 3


def images(channels_last: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, SIZE, SIZE, 3)).astype(np.float32)
    y = np.arange(N) % CLASSES
    return (X if channels_last else X.transpose(0, 3, 1, 2).copy()), y


# --------------------------------------------------------------------------- PyTorch
def torchvision_models():
    from torch import nn
    from torchvision import models

    resnet = models.resnet18(weights=None)
    resnet.fc = nn.Linear(resnet.fc.in_features, CLASSES)
    mobilenet = models.mobilenet_v3_small(weights=None)
    mobilenet.classifier[-1] = nn.Linear(mobilenet.classifier[-1].in_features, CLASSES)
    return {"resnet18": resnet, "mobilenet_v3_small": mobilenet}


@pytest.fixture(params=["resnet18", "mobilenet_v3_small"])
def torch_model(request):
    import tlcourse.torch as tt

    tt.set_seed(0)
    return torchvision_models()[request.param]


def test_torch_fit_predict_evaluate(torch_model):
    import tlcourse.torch as tt

    X, y = images(channels_last=False)
    history = tt.fit(torch_model, X, y, num_epochs=2, batch_size=8, quiet=True)
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
    logits = tt.predict(torch_model, X)
    assert logits.shape == (N, CLASSES)
    scores = tt.evaluate(torch_model, X, y)
    assert scores["accuracy"] == pytest.approx((logits.argmax(1) == y).mean())


def test_torch_blocks_freeze_and_param_groups(torch_model):
    import tlcourse.torch as tt

    blocks = tt.block_names(torch_model)
    assert len(blocks) >= 2
    total = tt.count_parameters(torch_model)
    tt.freeze(torch_model, until=blocks[-2])
    head = [p for n, p in torch_model.named_parameters() if n.startswith(blocks[-1])]
    assert tt.count_parameters(torch_model) == sum(p.numel() for p in head)
    tt.unfreeze(torch_model)
    assert tt.count_parameters(torch_model) == total
    summary = tt.trainable_summary(torch_model)
    assert list(summary.index) == blocks
    rates = {name: 1e-4 for name in blocks} | {blocks[-1]: 1e-2}
    groups = tt.param_groups(torch_model, rates)
    assert sum(sum(p.numel() for p in g["params"]) for g in groups) == total
    tt.freeze_batchnorm(torch_model)


def test_torch_features_clone_and_penalty(torch_model):
    import tlcourse.torch as tt

    X, y = images(channels_last=False)
    layers = tt.feature_layers(torch_model)
    features = tt.extract_features(torch_model, X, layer=layers[-1])
    assert features.ndim == 2 and len(features) == N
    copy = tt.clone_model(torch_model)
    np.testing.assert_array_equal(tt.predict(copy, X), tt.predict(torch_model, X))
    assert float(tt.l2sp_penalty(copy, torch_model)) == pytest.approx(0.0, abs=1e-6)
    tt.reset_parameters(copy, blocks=[tt.block_names(copy)[-1]])
    assert not np.array_equal(tt.predict(copy, X), tt.predict(torch_model, X))


def test_torch_checkpoint_round_trip(torch_model, tmp_path):
    import tlcourse.torch as tt

    X, _ = images(channels_last=False)
    path = tt.save_checkpoint(tmp_path / "model.pt", torch_model)
    other = tt.clone_model(torch_model)
    tt.reset_parameters(other, blocks=tt.block_names(other))
    report = tt.load_matching(other, path)
    assert not report.skipped
    np.testing.assert_array_equal(tt.predict(other, X), tt.predict(torch_model, X))


def test_torch_gradual_unfreezing(torch_model):
    import tlcourse.torch as tt

    X, y = images(channels_last=False)
    stages = tt.block_names(torch_model)[::-1][:2]
    history = tt.fit_gradual_unfreezing(
        torch_model, X, y, stages=stages, epochs_per_stage=1, batch_size=8, quiet=True
    )
    assert len(history["loss"]) == 2


# --------------------------------------------------------------------------- Keras
def keras_models():
    import keras

    def base():
        return keras.applications.MobileNetV2(
            include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), alpha=0.35
        )

    inputs = keras.Input((SIZE, SIZE, 3))
    x = base()(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    functional = keras.Model(inputs, keras.layers.Dense(CLASSES, name="head")(x))
    sequential = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            base(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(CLASSES, name="head"),
        ]
    )
    return {"functional": functional, "sequential": sequential}


@pytest.fixture(params=["functional", "sequential"])
def keras_model(request):
    import tlcourse.keras as tk

    tk.set_seed(0)
    return keras_models()[request.param]


def test_keras_fit_predict_evaluate(keras_model):
    import tlcourse.keras as tk

    X, y = images(channels_last=True)
    history = tk.fit(keras_model, X, y, num_epochs=2, batch_size=8, quiet=True)
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
    logits = tk.predict(keras_model, X)
    assert logits.shape == (N, CLASSES)
    scores = tk.evaluate(keras_model, X, y)
    assert scores["accuracy"] == pytest.approx((logits.argmax(1) == y).mean())


def test_keras_blocks_freeze_and_param_groups(keras_model):
    import tlcourse.keras as tk

    blocks = tk.block_names(keras_model)
    assert len(blocks) >= 2
    total = tk.count_parameters(keras_model)
    tk.freeze(keras_model, until=blocks[-2])
    head = keras_model.get_layer(blocks[-1])
    assert tk.count_parameters(keras_model) == sum(
        int(np.prod(w.shape)) for w in head.trainable_weights
    )
    tk.unfreeze(keras_model)
    assert tk.count_parameters(keras_model) == total
    summary = tk.trainable_summary(keras_model)
    assert list(summary.index) == blocks
    rates = {name: 1e-4 for name in blocks} | {blocks[-1]: 1e-2}
    groups = tk.param_groups(keras_model, rates)
    grouped = sum(int(np.prod(w.shape)) for g in groups for w in g["variables"])
    assert grouped == total
    tk.freeze_batchnorm(keras_model)


def test_keras_features_clone_and_penalty(keras_model):
    import tlcourse.keras as tk

    X, _ = images(channels_last=True)
    layers = tk.feature_layers(keras_model)
    features = tk.extract_features(keras_model, X, layer=layers[-1])
    assert features.ndim == 2 and len(features) == N
    copy = tk.clone_model(keras_model)
    np.testing.assert_allclose(tk.predict(copy, X), tk.predict(keras_model, X), atol=1e-5)
    assert float(tk.l2sp_penalty(copy, keras_model)) == pytest.approx(0.0, abs=1e-6)
    tk.reset_parameters(copy, blocks=[tk.block_names(copy)[-1]])
    before, after = tk.predict(keras_model, X), tk.predict(copy, X)
    assert np.abs(after - before).max() > 1e-3 * np.abs(before).max()


def test_keras_checkpoint_round_trip(keras_model, tmp_path):
    import tlcourse.keras as tk

    X, _ = images(channels_last=True)
    path = tk.save_checkpoint(tmp_path / "model.weights.h5", keras_model)
    other = tk.clone_model(keras_model)
    tk.reset_parameters(other, blocks=[tk.block_names(other)[-1]])
    report = tk.load_matching(other, path)
    assert not report.skipped
    np.testing.assert_allclose(tk.predict(other, X), tk.predict(keras_model, X), atol=1e-5)


def test_keras_gradual_unfreezing(keras_model):
    import tlcourse.keras as tk

    X, y = images(channels_last=True)
    stages = tk.block_names(keras_model)[::-1][:2]
    history = tk.fit_gradual_unfreezing(
        keras_model, X, y, stages=stages, epochs_per_stage=1, batch_size=8, quiet=True
    )
    assert len(history["loss"]) == 2
