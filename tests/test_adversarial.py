"""The gradient-reversal layer: identity forward, gradient times -lambda backward."""

import numpy as np
import pytest

import tlcourse.keras as tk
import tlcourse.torch as tt


@pytest.mark.parametrize("lambda_", [1.0, 0.3, 0.0])
def test_torch_forward_is_identity_and_backward_reverses(lambda_):
    import torch

    x = torch.randn(4, 3, requires_grad=True)
    layer = tt.GradientReversal(lambda_)
    out = layer(x)
    torch.testing.assert_close(out, x)
    upstream = torch.randn(4, 3)
    (out * upstream).sum().backward()
    torch.testing.assert_close(x.grad, -lambda_ * upstream)
    # A gradient that flows around the layer is untouched.
    y = torch.randn(2, requires_grad=True)
    (y.sum() + tt.reverse_gradient(y, lambda_).sum()).backward()
    torch.testing.assert_close(y.grad, torch.full((2,), 1.0 - lambda_))


@pytest.mark.parametrize("lambda_", [1.0, 0.3, 0.0])
def test_keras_forward_is_identity_and_backward_reverses(lambda_):
    import tensorflow as tf

    x = tf.Variable(np.random.default_rng(0).normal(size=(4, 3)).astype("float32"))
    upstream = tf.constant(np.random.default_rng(1).normal(size=(4, 3)).astype("float32"))
    layer = tk.GradientReversal(lambda_)
    with tf.GradientTape() as tape:
        out = layer(x)
        loss = tf.reduce_sum(out * upstream)
    np.testing.assert_allclose(out.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), -lambda_ * upstream.numpy())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(x) + tf.reduce_sum(tk.reverse_gradient(x, lambda_))
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), np.full((4, 3), 1.0 - lambda_))


def test_keras_lambda_can_change_inside_a_compiled_function():
    import tensorflow as tf

    layer = tk.GradientReversal(1.0)
    x = tf.Variable([[1.0, 2.0]])

    @tf.function
    def grad():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, x)

    np.testing.assert_allclose(grad().numpy(), [[-1.0, -1.0]])
    layer.lambda_ = 0.25
    assert layer.lambda_ == 0.25
    np.testing.assert_allclose(grad().numpy(), [[-0.25, -0.25]])
    assert tk.GradientReversal.from_config(layer.get_config()).lambda_ == 0.25


@pytest.mark.parametrize("backend", [tt, tk], ids=["torch", "keras"])
def test_lambda_must_be_a_non_negative_number(backend):
    for bad in (-1.0, float("nan"), "strong"):
        with pytest.raises(ValueError, match="lambda_"):
            backend.GradientReversal(bad)
