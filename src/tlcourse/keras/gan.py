"""A small class-conditional DCGAN for 28x28 digits, in Keras 3 (twin: ``tlcourse.torch.gan``).

Same architecture, parameter count and losses as the PyTorch twin. Training is the Keras
idiom of the keras.io conditional GAN example: a ``keras.Model`` subclass,
:class:`ConditionalGAN`, whose ``train_step`` updates the discriminator and then the
generator with their own optimisers, driven by ``fit``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from tlcourse.checks import check_images_and_labels, check_positive_ints
from tlcourse.keras.models import to_array
from tlcourse.keras.optim import reset_optimizer
from tlcourse.keras.training import EpochBar, set_seed


class ConditionalGAN(keras.Model):
    """A class-conditional generator and discriminator, trained together by ``fit``.

    Taught in :ref:`ch-gan-augmentation`.

    The keras.io conditional GAN pattern: ``compile(d_optimizer=..., g_optimizer=...)``,
    then ``fit`` on batches ``(real images, labels, latent vectors)``. Each ``train_step``
    takes one step on the discriminator (real against generated images, the same labels),
    then one on the generator (non-saturating loss), exactly as
    :func:`tlcourse.torch.train_gan` does; the logs are each epoch's mean ``d_loss``,
    ``g_loss``, ``d_real`` and ``d_fake`` (the discriminator's mean probability of "real"
    for real and for generated images). :func:`train_gan` builds one and feeds it.

    Parameters
    ----------
    generator : keras.Model
        From :func:`build_generator`.
    discriminator : keras.Model
        From :func:`build_discriminator`.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)
        self.trackers = [keras.metrics.Mean(name=n) for n in _LOGS]
        self.built = True  # its parts are built models

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    @property
    def metrics(self):
        return self.trackers  # so that fit resets the means at every epoch

    def train_step(self, data):
        real, labels, z = data
        generator, discriminator = self.generator, self.discriminator
        with tf.GradientTape() as tape:
            fake = generator([z, labels], training=True)
            d_real = discriminator([real, labels], training=True)
            d_fake = discriminator([fake, labels], training=True)
            d_loss = self.bce(tf.ones_like(d_real), d_real) + self.bce(
                tf.zeros_like(d_fake), d_fake
            )
        grads = tape.gradient(d_loss, discriminator.trainable_variables)
        self.d_optimizer.apply(grads, discriminator.trainable_variables)
        with tf.GradientTape() as tape:
            score = discriminator([generator([z, labels], training=True), labels], training=True)
            g_loss = self.bce(tf.ones_like(score), score)
        grads = tape.gradient(g_loss, generator.trainable_variables)
        self.g_optimizer.apply(grads, generator.trainable_variables)
        values = (
            d_loss,
            g_loss,
            tf.reduce_mean(tf.sigmoid(d_real)),
            tf.reduce_mean(tf.sigmoid(d_fake)),
        )
        for tracker, value in zip(self.trackers, values, strict=True):
            tracker.update_state(value)
        return {t.name: t.result() for t in self.trackers}


_LOGS = ("d_loss", "g_loss", "d_real", "d_fake")


def _gan_for(generator, discriminator, lr, betas) -> ConditionalGAN:
    """The ConditionalGAN that trains this pair of models at this rate, compiled.

    ``fit`` traces the training step once per ConditionalGAN (seconds), so the last one is
    kept on the generator, untracked (not a layer of it), and reused when the
    discriminator and the rate are the same, with both optimisers reset.
    """
    key = (float(lr), tuple(float(b) for b in betas))
    kept = getattr(generator, "_tlcourse_gan", None)
    if kept is not None and kept.discriminator is discriminator and kept.rate == key:
        reset_optimizer(kept.d_optimizer)
        reset_optimizer(kept.g_optimizer)
        return kept
    gan = ConditionalGAN(generator, discriminator)
    d_opt, g_opt = (
        keras.optimizers.Adam(lr, beta_1=betas[0], beta_2=betas[1], epsilon=1e-8) for _ in "dg"
    )
    gan.compile(d_optimizer=d_opt, g_optimizer=g_opt)
    # Built before fit traces train_step, which then traces once (see tlcourse.keras.fit).
    d_opt.build(discriminator.trainable_variables)
    g_opt.build(generator.trainable_variables)
    object.__setattr__(gan, "rate", key)
    object.__setattr__(generator, "_tlcourse_gan", gan)  # bypasses Keras' layer tracking
    return gan


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
    drops its last incomplete batch (``max(1, len(X) // batch_size)`` steps). Training is
    ``fit`` on a :class:`ConditionalGAN`, one per pair of models and rate: calling again with
    the same generator, discriminator, ``lr`` and ``betas`` reuses it (no re-tracing), with
    both optimisers' state reset, so each call starts Adam afresh as in PyTorch.
    """
    X, y = check_images_and_labels(X, y, num_classes=generator.num_classes)
    if num_epochs < 1 or batch_size < 1:
        raise ValueError("num_epochs and batch_size must be positive.")
    X, y = to_array(X), y.astype("int32")
    sample_epochs = set(sample_epochs)
    if sample_labels is None:
        sample_labels = np.arange(generator.num_classes)
    set_seed(seed)
    gan = _gan_for(generator, discriminator, lr, betas)
    size = min(batch_size, len(X))  # drop the last incomplete batch, as in the twin
    steps = len(X) // size
    # Every epoch's order and latent vectors, drawn as the PyTorch twin draws them (a
    # permutation, then one draw per step), and fed to fit batch by batch.
    rng = np.random.default_rng(seed)
    order, z = [], []
    for _ in range(num_epochs):
        perm = rng.permutation(len(X))
        order += [perm[i * size : (i + 1) * size] for i in range(steps)]
        z += [rng.standard_normal((size, generator.latent_dim)) for _ in range(steps)]
    X_t, y_t = tf.constant(X), tf.constant(y)
    batches = tf.data.Dataset.from_tensor_slices((np.stack(order), np.float32(z))).map(
        lambda idx, z: (tf.gather(X_t, idx), tf.gather(y_t, idx), z)
    )
    history: dict = {key: [] for key in _LOGS}
    history["samples"] = {}

    def on_epoch_end(epoch, logs):
        for key in _LOGS:
            history[key].append(float(logs[key]))
        if epoch + 1 in sample_epochs:
            history["samples"][epoch + 1] = generate(generator, sample_labels, seed=12345)

    bar = EpochBar(num_epochs, desc=desc, disable=quiet)  # no per-batch hook for Keras to call
    gan.fit(
        batches,
        epochs=num_epochs,
        steps_per_epoch=steps,
        verbose=0,
        shuffle=False,  # the batches are drawn above, in order
        callbacks=[bar, keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)],
    )
    return history


def generate_labelled(generator: keras.Model, n_per_class: int, *, seed: int = 0):
    """``n_per_class`` generated images of every class, with their labels, for augmentation.

    Taught in :ref:`ch-gan-augmentation`.

    Same as :func:`tlcourse.torch.generate_labelled`.
    """
    check_positive_ints(n_per_class=n_per_class)
    labels = np.repeat(np.arange(generator.num_classes), n_per_class)
    return generate(generator, labels, seed=seed), labels
