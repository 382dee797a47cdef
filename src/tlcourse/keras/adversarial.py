"""The gradient-reversal layer of domain-adversarial training, in Keras 3 on TensorFlow.

Twin of ``tlcourse.torch.adversarial``: identity on the way forward, gradient times
``-lambda`` on the way back (Ganin & Lempitsky, 2015).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tlcourse.checks import check_non_negative


@tf.custom_gradient
def _reverse(x, lambda_):
    def grad(upstream):
        return -lambda_ * upstream, tf.zeros_like(lambda_)

    return tf.identity(x), grad


def reverse_gradient(x, lambda_: float = 1.0):
    """Identity on the way forward; multiplies the gradient by ``-lambda_`` on the way back.

    Taught in :ref:`ch-gan-augmentation`.

    Same as :func:`tlcourse.torch.reverse_gradient`.
    """
    x = tf.convert_to_tensor(x)
    return _reverse(x, tf.constant(check_non_negative("lambda_", lambda_), dtype=x.dtype))


@keras.saving.register_keras_serializable(package="tlcourse")
class GradientReversal(keras.layers.Layer):
    """Layer form of :func:`reverse_gradient`; ``lambda_`` may be changed during training

    Taught in :ref:`ch-gan-augmentation`.
    (it is a non-trainable variable, so a compiled step sees the new value)."""

    def __init__(self, lambda_: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self._lambda = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(check_non_negative("lambda_", lambda_)),
            trainable=False,
            name="lambda",
        )

    @property
    def lambda_(self) -> float:
        return float(self._lambda.numpy())

    @lambda_.setter
    def lambda_(self, value: float) -> None:
        self._lambda.assign(check_non_negative("lambda_", value))

    def call(self, x):
        return _reverse(x, keras.ops.cast(self._lambda, x.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "lambda_": self.lambda_}
