"""The PyTorch and Keras halves: same architecture, same behaviour, clear errors."""

import numpy as np
import pytest

import tlcourse.keras as tk
import tlcourse.torch as tt

BACKENDS = [pytest.param(tt, id="torch"), pytest.param(tk, id="keras")]


@pytest.mark.parametrize("width", [4, 16])
def test_same_parameter_count_and_output_shape(width):
    torch_model = tt.build_digit_net(width=width)
    keras_model = tk.build_digit_net(width=width)
    assert tt.count_parameters(torch_model) == tk.count_parameters(keras_model)
    X = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    assert tt.predict(torch_model, X).shape == (3, 10)
    assert tk.predict(keras_model, X).shape == (3, 10)


def test_same_block_names_and_feature_sizes():
    torch_model = tt.build_digit_net(width=8)
    keras_model = tk.build_digit_net(width=8)
    names = [n for n, _ in torch_model.named_children()]
    assert names == ["block1", "block2", "block3", "head"]
    assert [layer.name for layer in keras_model.layers[1:]] == names
    assert keras_model.get_layer("block3").output.shape == (None, 32)
    assert keras_model.get_layer("block2").output.shape == (None, 7, 7, 16)


def test_total_weights_match_including_batchnorm_statistics():
    # Keras counts moving mean/variance as (non-trainable) weights, PyTorch as buffers.
    torch_model = tt.build_digit_net()
    buffers = sum(b.numel() for n, b in torch_model.named_buffers() if "running" in n)
    keras_model = tk.build_digit_net()
    assert tk.count_parameters(keras_model, trainable_only=False) == (
        tt.count_parameters(torch_model) + buffers
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_few_epochs_lower_the_loss(backend, tiny_digits):
    (X, y), (X_test, y_test) = tiny_digits
    backend.set_seed(0)
    model = backend.build_digit_net(width=8)
    before = backend.evaluate(model, X, y)["loss"]
    history = backend.fit(
        model,
        X,
        y,
        num_epochs=10,
        batch_size=32,
        lr=1e-2,
        quiet=True,
        validation_data=(X_test, y_test),
    )
    after = backend.evaluate(model, X, y)["loss"]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 10 for v in history.values())
    assert history["loss"][-1] < history["loss"][0]
    assert after < 0.7 * before
    assert history["accuracy"][-1] > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_training_repeats_exactly_with_the_same_seed(backend, tiny_digits):
    (X, y), _ = tiny_digits
    runs = []
    for _ in range(2):
        backend.set_seed(7)
        model = backend.build_digit_net(width=4)
        history = backend.fit(
            model, X[:64], y[:64], num_epochs=2, batch_size=16, seed=7, quiet=True
        )
        runs.append((history["loss"], backend.predict(model, X[:8])))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_matches_predictions(backend, tiny_digits):
    _, (X, y) = tiny_digits
    backend.set_seed(0)
    model = backend.build_digit_net(width=4)
    logits = backend.predict(model, X)
    scores = backend.evaluate(model, X, y)
    assert scores["accuracy"] == pytest.approx((logits.argmax(1) == y).mean())
    log_probs = (
        logits
        - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
        - logits.max(1, keepdims=True)
    )
    assert scores["loss"] == pytest.approx(-log_probs[np.arange(len(y)), y].mean(), rel=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_inputs_give_clear_errors(backend, tiny_digits):
    (X, y), _ = tiny_digits
    model = backend.build_digit_net(width=4)
    with pytest.raises(ValueError, match=r"Labels must lie in \[0, 10\)"):
        backend.fit(model, X[:8], y[:8] + 10, quiet=True)
    with pytest.raises(ValueError, match="Expected labels of shape"):
        backend.fit(model, X[:8], y[:7], quiet=True)
    with pytest.raises(ValueError, match="Expected feature vectors"):
        backend.evaluate(model, X[0, 0], y[:1])
    with pytest.raises(ValueError, match="NaN"):
        backend.predict(model, np.full((2, 28, 28), np.nan))
    with pytest.raises(ValueError, match="integers"):
        backend.fit(model, X[:8], y[:8].astype(float), quiet=True)
    with pytest.raises(ValueError, match="Unknown schedule 'linear'"):
        backend.fit(model, X[:8], y[:8], schedule="linear", quiet=True)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        backend.set_seed(-1)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        backend.build_digit_net(width=0)


def test_fully_frozen_models_are_refused(tiny_digits):
    (X, y), _ = tiny_digits
    torch_model = tt.build_digit_net(width=4)
    for p in torch_model.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="no trainable parameters"):
        tt.fit(torch_model, X[:8], y[:8], quiet=True)
    keras_model = tk.build_digit_net(width=4)
    keras_model.trainable = False
    with pytest.raises(ValueError, match="no trainable weights"):
        tk.fit(keras_model, X[:8], y[:8], quiet=True)


@pytest.mark.slow
def test_both_frameworks_reach_similar_accuracy(tiny_digits):
    """Same data, same recipe: the two halves should learn equally well."""
    (X, y), (X_test, y_test) = tiny_digits
    accs = {}
    for backend in (tt, tk):
        backend.set_seed(0)
        model = backend.build_digit_net(width=8)
        backend.fit(model, X, y, num_epochs=12, batch_size=32, lr=1e-2, quiet=True)
        accs[backend.__name__] = backend.evaluate(model, X_test, y_test)["accuracy"]
    assert min(accs.values()) > 0.5, accs
    assert abs(accs["tlcourse.torch"] - accs["tlcourse.keras"]) < 0.2, accs


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_clone_model_copies_weights_and_is_independent(backend, tiny_digits):
    (X, y), _ = tiny_digits
    backend.set_seed(0)
    model = backend.build_digit_net(width=4)
    backend.fit(model, X[:64], y[:64], num_epochs=1, quiet=True)
    clone = backend.clone_model(model)
    np.testing.assert_array_equal(backend.predict(clone, X[:16]), backend.predict(model, X[:16]))
    before = backend.predict(model, X[:16])
    backend.fit(clone, X[:64], y[:64], num_epochs=1, quiet=True)
    np.testing.assert_array_equal(backend.predict(model, X[:16]), before)
    assert not np.array_equal(backend.predict(clone, X[:16]), before)


def test_keras_clone_of_a_model_trained_with_per_block_rates(tiny_digits):
    """clone_model copies architecture and weights only: a model compiled with
    BlockwiseAdamW (which cannot be serialised) clones, and the clone trains on its own."""
    import tlcourse.keras as tk

    (X, y), _ = tiny_digits
    model = tk.build_digit_net(width=4)
    rates = {"block1": 1e-3, "block2": 1e-3, "block3": 3e-3, "head": 1e-2}
    tk.fit(model, X[:64], y[:64], num_epochs=1, lr=rates, quiet=True)
    assert model.compiled and isinstance(model.optimizer, tk.BlockwiseAdamW)
    clone = tk.clone_model(model)
    assert model.compiled and not clone.compiled
    np.testing.assert_array_equal(tk.predict(clone, X[:16]), tk.predict(model, X[:16]))
    tk.fit(clone, X[:64], y[:64], num_epochs=1, lr=rates, quiet=True)
    assert not np.array_equal(tk.predict(clone, X[:16]), tk.predict(model, X[:16]))


def test_keras_set_seed_seeds_keras_without_clearing_tensorflow_caches(monkeypatch):
    """tk.set_seed repeats Keras' draws but never calls tf.random.set_seed, which clears
    TensorFlow's kernel caches (every traced step would be instantiated again)."""
    import keras
    import tensorflow as tf

    tk.set_seed(3)
    first = (
        np.random.rand(2),  # noqa: NPY002 - the global state set_seed seeds
        keras.random.uniform((2,)).numpy(),
        tk.build_digit_net().get_weights(),
    )
    monkeypatch.setattr(tf.random, "set_seed", lambda seed: pytest.fail("caches cleared"))
    tk.set_seed(3)
    again = (
        np.random.rand(2),  # noqa: NPY002 - the global state set_seed seeds
        keras.random.uniform((2,)).numpy(),
        tk.build_digit_net().get_weights(),
    )
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    for a, b in zip(first[2], again[2], strict=True):
        np.testing.assert_array_equal(a, b)


def test_keras_predict_runs_the_current_weights_in_inference_mode(tiny_digits):
    # predict keeps Keras' compiled predict step from call to call: it must still see
    # every change of the weights, and give what an eager call in inference mode gives.
    _, (X, _) = tiny_digits
    tk.set_seed(0)
    model = tk.build_digit_net(width=4)
    X4 = X[:300, :, :, None].astype(np.float32)  # 300 rows: two batches of 256 and 44
    first = tk.predict(model, X4)
    np.testing.assert_allclose(first, model(X4, training=False).numpy(), atol=1e-5)
    for weight in model.get_layer("head").weights:
        weight.assign(weight.numpy() + 1.0)
    second = tk.predict(model, X4)
    np.testing.assert_allclose(second, model(X4, training=False).numpy(), atol=1e-5)
    assert np.abs(second - first).min() > 0.5  # every logit moved with the new bias
