"""Feature extraction and linear probes in both frameworks, on the course's net and on
the ImageNet architectures readers use (built with weights=None: no download)."""

import numpy as np
import pytest
import torch

import tlcourse.keras as tk
import tlcourse.torch as tt


@pytest.fixture(scope="module")
def trained_pair(tiny_digits):
    (X, y), _ = tiny_digits
    tt.set_seed(0)
    torch_model = tt.build_digit_net(width=4)
    tt.fit(torch_model, X, y, num_epochs=1, quiet=True)
    keras_model = tk.build_digit_net(width=4)
    tt.port_to_keras(torch_model, keras_model)
    return torch_model, keras_model


def test_torch_features_match_the_network_body(trained_pair, tiny_digits):
    (X, _), _ = tiny_digits
    model, _ = trained_pair
    model.train()
    F = tt.extract_features(model, X, layer="block3", batch_size=100)
    assert model.training  # mode restored
    with torch.no_grad():
        expected = model[:-1].eval()(torch.as_tensor(X[:, None])).numpy()
    model.train()
    np.testing.assert_allclose(F, expected, atol=1e-5)
    np.testing.assert_array_equal(tt.extract_features(model, X), F)  # default: before head
    assert tt.extract_features(model, X[:3], layer="block2").shape == (3, 8 * 7 * 7)


def test_torch_extraction_stops_after_the_layer(trained_pair, tiny_digits):
    (X, _), _ = tiny_digits
    model, _ = trained_pair
    calls = []
    handle = model.head.register_forward_hook(lambda *args: calls.append(1))
    try:
        tt.extract_features(model, X[:10], layer="block2")
    finally:
        handle.remove()
    assert calls == []


def test_both_frameworks_extract_the_same_features(trained_pair, tiny_digits):
    (X, _), _ = tiny_digits
    torch_model, keras_model = trained_pair
    for layer in ("block1", "block3"):
        F_torch = tt.extract_features(torch_model, X[:20], layer=layer)
        F_keras = tk.extract_features(keras_model, X[:20], layer=layer)
        assert F_torch.shape == F_keras.shape
        if layer == "block3":  # flattened maps differ in order (C,H,W) vs (H,W,C)
            np.testing.assert_allclose(F_torch, F_keras, atol=1e-4)


@pytest.mark.parametrize("backend", [tt, tk], ids=["torch", "keras"])
def test_unknown_layer_lists_the_valid_ones(backend):
    model = backend.build_digit_net(width=4)
    with pytest.raises(ValueError, match=r"Unknown layer 'fc'. Valid layers are: \['block1'"):
        backend.extract_features(model, np.zeros((2, 28, 28)), layer="fc")


def test_torch_resnet18_features_are_flattened():
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    X = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    F = tt.extract_features(model, X)  # default: avgpool, the layer before fc
    assert F.shape == (3, 512)
    assert tt.extract_features(model, X, layer="layer3").shape == (3, 256 * 4 * 4)


@pytest.mark.slow
def test_keras_mobilenetv2_features():
    import keras

    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(64, 64, 3))
    X = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    assert tk.extract_features(base, X, layer="out_relu").shape == (2, 2 * 2 * 1280)
    assert "block_16_project_BN" in tk.feature_layers(base)


@pytest.mark.slow
@pytest.mark.parametrize("backend", [tt, tk], ids=["torch", "keras"])
def test_linear_probe_learns_separable_features(backend):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    F = rng.normal(size=(300, 8)).astype(np.float32) + 3 * np.eye(3, 8)[y]
    backend.set_seed(0)
    head, history = backend.fit_linear_probe(F, y, num_classes=3, num_epochs=60, lr=1e-2)
    assert history["loss"][-1] < history["loss"][0]
    assert backend.evaluate(head, F, y)["accuracy"] > 0.9
    with pytest.raises(ValueError, match=r"features of shape \(N, D\)"):
        backend.fit_linear_probe(F[:, :, None], y)


def test_frozen_backbone_keeps_weights_and_batchnorm_statistics(tiny_digits):
    from torch import nn

    (X, y), _ = tiny_digits
    tt.set_seed(0)
    body = tt.build_digit_net(width=4)[:-1]
    before = {k: v.clone() for k, v in body.state_dict().items()}
    model = nn.Sequential(tt.Frozen(body), nn.Linear(16, 10))
    tt.fit(model, X, y, num_epochs=2, quiet=True)
    for k, v in body.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not body.training
    assert tt.count_parameters(model) == 16 * 10 + 10
