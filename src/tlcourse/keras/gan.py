"""A small class-conditional DCGAN for 28x28 digits, in Keras 3 (twin: ``tlcourse.torch.gan``).

Same architecture, parameter count and losses as the PyTorch twin; training is a custom
``tf.function`` step (two optimisers, the discriminator first), as in the keras.io GAN
examples, rather than ``model.fit``.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf
from keras import layers
from tqdm import tqdm

from tlcourse.checks import check_images_and_labels, check_positive_ints
from tlcourse.keras.models import to_array
from tlcourse.keras.optim import reset_optimizer

# generator -> (discriminator ref, (lr, betas), step, opt_g, opt_d): tracing the step costs seconds,
# so a second train_gan call on the same pair of models, at the same rate, reuses it (with
# the optimisers' state reset). Weak keys, and the step holds only weak references to the
# models, so a dropped generator frees its entry.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _make_step(generator, discriminator, opt_g, opt_d):
    g_ref, d_ref = weakref.ref(generator), weakref.ref(discriminator)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def step(real, labels, z):
        generator, discriminator = g_ref(), d_ref()
        with tf.GradientTape() as tape:
            fake = generator([z, labels], training=True)
            d_real = discriminator([real, labels], training=True)
            d_fake = discriminator([fake, labels], training=True)
            d_loss = bce(tf.ones_like(d_real), d_real) + bce(tf.zeros_like(d_fake), d_fake)
        grads = tape.gradient(d_loss, discriminator.trainable_variables)
        opt_d.apply(grads, discriminator.trainable_variables)
        with tf.GradientTape() as tape:
            score = discriminator([generator([z, labels], training=True), labels], training=True)
            g_loss = bce(tf.ones_like(score), score)
        grads = tape.gradient(g_loss, generator.trainable_variables)
        opt_g.apply(grads, generator.trainable_variables)
        return tf.stack(
            [d_loss, g_loss, tf.reduce_mean(tf.sigmoid(d_real)), tf.reduce_mean(tf.sigmoid(d_fake))]
        )

    return step


def _compiled_step(generator, discriminator, lr, betas):
    """The training step for this pair of models and rate: cached, or traced afresh."""
    cached = _COMPILED.get(generator)
    key = (float(lr), tuple(float(b) for b in betas))
    if cached is not None and cached[0]() is discriminator and cached[1] == key:
        reset_optimizer(cached[3])
        reset_optimizer(cached[4])
        return cached[2]
    opt_g, opt_d = (
        keras.optimizers.Adam(lr, beta_1=betas[0], beta_2=betas[1], epsilon=1e-8) for _ in "gd"
    )
    step = _make_step(generator, discriminator, opt_g, opt_d)
    _COMPILED[generator] = (weakref.ref(discriminator), key, step, opt_g, opt_d)
    return step


class _OneHot(layers.Layer):
    """Integer labels ``(N,)`` to one-hot codes ``(N, num_classes)``."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def call(self, labels):
        return keras.ops.one_hot(keras.ops.cast(labels, "int32"), self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


class _AddLabelMaps(layers.Layer):
    """Feature maps ``(N, 14, 14, C)`` plus a learned map per class (``N(0, 1)`` at first,
    like the PyTorch twin's ``nn.Embedding``: the discriminator can tell the classes apart
    from the first step)."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def build(self, input_shape):
        self.maps = self.add_weight(
            shape=(self.num_classes, *input_shape[0][1:]),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            name="maps",
        )

    def call(self, inputs):
        h, labels = inputs
        return h + keras.ops.take(self.maps, keras.ops.cast(labels, "int32"), axis=0)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def build_generator(latent_dim: int = 32, num_classes: int = 10, width: int = 16) -> keras.Model:
    """``G([z, y])``: latent vectors ``(N, latent_dim)`` and labels ``(N,)`` to images

    Taught in :ref:`ch-gan-augmentation`.
    ``(N, 28, 28, 1)`` in ``[0, 1]``. Attributes ``latent_dim``, ``num_classes``, ``width``."""
    check_positive_ints(latent_dim=latent_dim, num_classes=num_classes, width=width)
    z = keras.Input((latent_dim,), name="z")
    label = keras.Input((), dtype="int32", name="label")
    h = layers.Concatenate()([z, _OneHot(num_classes, name="onehot")(label)])
    h = layers.Dense(2 * width * 7 * 7, use_bias=False, name="project")(h)
    h = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="project_bn")(h)
    h = layers.Reshape((7, 7, 2 * width))(layers.ReLU()(h))
    h = layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False, name="up1")(h)
    h = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn1")(h))
    image = layers.Conv2DTranspose(1, 4, strides=2, padding="same", name="up2")(h)
    model = keras.Model([z, label], layers.Activation("sigmoid", name="out")(image), name="G")
    model.latent_dim, model.num_classes, model.width = latent_dim, num_classes, width
    return model


def build_discriminator(num_classes: int = 10, width: int = 16) -> keras.Model:
    """``D([x, y])``: images ``(N, 28, 28, 1)`` and labels ``(N,)`` to logits ``(N,)``.

    Taught in :ref:`ch-gan-augmentation`.
    Attributes ``num_classes`` and ``width``."""
    check_positive_ints(num_classes=num_classes, width=width)
    image = keras.Input((28, 28, 1), name="image")
    label = keras.Input((), dtype="int32", name="label")
    h = layers.Conv2D(width, 4, strides=2, padding="same", name="conv1")(image)
    h = layers.LeakyReLU(0.2)(_AddLabelMaps(num_classes, name="label_maps")([h, label]))
    h = layers.LeakyReLU(0.2)(
        layers.Conv2D(2 * width, 4, strides=2, padding="same", name="conv2")(h)
    )
    logit = layers.Dense(1, name="linear")(layers.Flatten()(h))
    model = keras.Model([image, label], layers.Reshape(())(logit), name="D")
    model.num_classes, model.width = num_classes, width
    return model


def generate(
    generator: keras.Model, labels, *, seed: int = 0, batch_size: int = 1024
) -> np.ndarray:
    """Images for the given labels, from latent vectors drawn with ``seed``, in inference mode.

    Taught in :ref:`ch-gan-augmentation`.

    Same as :func:`tlcourse.torch.generate` (the latent draws differ between frameworks).

    Returns
    -------
    np.ndarray
        float32 images ``(N, 28, 28)`` in ``[0, 1]``.
    """
    labels = np.asarray(labels, np.int64)
    if labels.ndim != 1 or (
        labels.size and not 0 <= labels.min() <= labels.max() < generator.num_classes
    ):
        raise ValueError(f"labels must be a 1-D array of ints in [0, {generator.num_classes}).")
    z = np.random.default_rng(seed).standard_normal((len(labels), generator.latent_dim))
    out = [
        keras.ops.convert_to_numpy(
            generator(
                [
                    z[i : i + batch_size].astype("float32"),
                    labels[i : i + batch_size].astype("int32"),
                ],
                training=False,
            )
        )
        for i in range(0, len(labels), batch_size)
    ]
    return np.concatenate(out)[..., 0] if out else np.zeros((0, 28, 28), np.float32)


def train_gan(
    generator: keras.Model,
    discriminator: keras.Model,
    X,
    y,
    *,
    num_epochs: int = 10,
    batch_size: int = 64,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.0, 0.9),
    seed: int = 0,
    sample_epochs=(),
    sample_labels=None,
    quiet: bool = False,
    desc: str = "GAN",
) -> dict:
    """Train a conditional GAN with the non-saturating loss and Adam.

    Taught in :ref:`ch-gan-augmentation`.

    Same arguments and result as :func:`tlcourse.torch.train_gan`; every epoch likewise
    drops its last incomplete batch (``max(1, len(X) // batch_size)`` steps). The traced
    step and the two optimisers are cached per generator: calling again with the same
    generator, discriminator, ``lr`` and ``betas`` reuses them (no re-tracing), with the optimisers'
    state reset, so each call starts Adam afresh as in PyTorch.
    """
    X, y = check_images_and_labels(X, y, num_classes=generator.num_classes)
    if num_epochs < 1 or batch_size < 1:
        raise ValueError("num_epochs and batch_size must be positive.")
    X, y = to_array(X), y.astype("int32")
    sample_epochs = set(sample_epochs)
    if sample_labels is None:
        sample_labels = np.arange(generator.num_classes)
    keras.utils.set_random_seed(seed)
    step = _compiled_step(generator, discriminator, lr, betas)
    size = min(batch_size, len(X))  # drop the last incomplete batch, as in the twin
    steps = len(X) // size
    rng = np.random.default_rng(seed)
    history: dict = {"d_loss": [], "g_loss": [], "d_real": [], "d_fake": [], "samples": {}}
    bar = tqdm(range(1, num_epochs + 1), desc=desc, disable=quiet, unit="epoch", mininterval=1.0)
    for epoch in bar:
        order = rng.permutation(len(X))
        sums = np.zeros(4)
        for i in range(steps):
            idx = order[i * size : (i + 1) * size]
            z = rng.standard_normal((size, generator.latent_dim)).astype("float32")
            sums += np.asarray(step(X[idx], y[idx], z))
        for key, value in zip(("d_loss", "g_loss", "d_real", "d_fake"), sums / steps, strict=True):
            history[key].append(float(value))
        bar.set_postfix(
            d_loss=f"{history['d_loss'][-1]:.3f}", g_loss=f"{history['g_loss'][-1]:.3f}"
        )
        if epoch in sample_epochs:
            history["samples"][epoch] = generate(generator, sample_labels, seed=12345)
    return history


def generate_labelled(generator: keras.Model, n_per_class: int, *, seed: int = 0):
    """``n_per_class`` generated images of every class, with their labels, for augmentation.

    Taught in :ref:`ch-gan-augmentation`.

    Same as :func:`tlcourse.torch.generate_labelled`.
    """
    check_positive_ints(n_per_class=n_per_class)
    labels = np.repeat(np.arange(generator.num_classes), n_per_class)
    return generate(generator, labels, seed=seed), labels
