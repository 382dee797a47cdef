"""Unsupervised domain adaptation in Keras 3 (twin: ``tlcourse.torch.adaptation``).

The same four alignment losses and the same loop as the PyTorch twin, written as a
``tf.function`` training step with ``tf.GradientTape``. Tracing a step costs seconds, so it
is cached per model and method: adapting the same model object again (after resetting its
weights, e.g. once per seed) reuses it, with the optimiser's state reset and DANN's domain
head re-initialised.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tlcourse.adaptation import batch_indices, check_adapt_inputs, dann_lambda
from tlcourse.checks import check_images_and_labels, check_positive_ints
from tlcourse.keras.adversarial import GradientReversal
from tlcourse.keras.models import num_outputs, to_array
from tlcourse.keras.optim import reset_optimizer
from tlcourse.schedules import cosine_factor


def coral_loss(source, target):
    """Deep CORAL loss, ``||C_s - C_t||_F^2 / (4 d^2)``; same as

    Taught in :ref:`ch-domain-adaptation`.
    :func:`tlcourse.torch.coral_loss`."""
    source, target = _check_pair(source, target)
    d = tf.cast(tf.shape(source)[1], source.dtype)
    diff = _cov(source) - _cov(target)
    return tf.reduce_sum(diff**2) / (4.0 * d * d)


def _cov(x):
    n = tf.cast(tf.shape(x)[0], x.dtype)
    centred = x - tf.reduce_mean(x, axis=0, keepdims=True)
    return tf.matmul(centred, centred, transpose_a=True) / (n - 1.0)


def mmd_loss(source, target, *, bandwidths=None, multipliers=(0.25, 0.5, 1.0, 2.0, 4.0)):
    """Multi-kernel squared MMD; same as :func:`tlcourse.torch.mmd_loss`.

    Taught in :ref:`ch-domain-adaptation`.
    """
    source, target = _check_pair(source, target)
    pooled = tf.concat([source, target], axis=0)
    norms = tf.reduce_sum(pooled**2, axis=1)
    gram = tf.matmul(pooled, pooled, transpose_b=True)
    sq = tf.maximum(norms[:, None] + norms[None, :] - 2.0 * gram, 0.0)
    if bandwidths is None:
        n = tf.cast(tf.shape(pooled)[0], pooled.dtype)
        base = tf.stop_gradient(tf.reduce_sum(sq)) / (n * n - n)
        bandwidths = [base * m for m in multipliers]
    kernel = tf.add_n([tf.exp(-sq / h) for h in bandwidths])
    n_s = tf.shape(source)[0]
    return (
        tf.reduce_mean(kernel[:n_s, :n_s])
        + tf.reduce_mean(kernel[n_s:, n_s:])
        - 2.0 * tf.reduce_mean(kernel[:n_s, n_s:])
    )


def _check_pair(source, target):
    source = tf.convert_to_tensor(source, tf.float32)
    target = tf.convert_to_tensor(target, tf.float32)
    if source.shape.rank != 2 or target.shape.rank != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(
            "Expected two feature batches (N, d) of equal width, got "
            f"{tuple(source.shape)} and {tuple(target.shape)}."
        )
    if (source.shape[0] is not None and source.shape[0] < 2) or (
        target.shape[0] is not None and target.shape[0] < 2
    ):
        raise ValueError("Each feature batch needs at least 2 rows.")
    return source, target


def build_domain_head(in_features: int, hidden: int = 64) -> keras.Sequential:
    """DANN's domain classifier: gradient reversal, then a small MLP to one logit.

    Taught in :ref:`ch-domain-adaptation`.

    The twin of :func:`tlcourse.torch.build_domain_head`; set
    ``head.layers[0].lambda_`` to change the reversal strength.
    """
    check_positive_ints(in_features=in_features, hidden=hidden)
    return keras.Sequential(
        [
            keras.Input((in_features,)),
            GradientReversal(0.0, name="grl"),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.Dense(1, name="domain_logit"),
        ],
        name="domain_head",
    )


def _chain(model: keras.Model) -> list:
    chain = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(chain) < 2:
        raise ValueError("adapt needs a model whose last layer is the classifier head.")
    return chain


def _make_step(model, method, optimizer, domain_head):
    ref = weakref.ref(model)
    xent = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def step(x_s, y_s, x_t, weight, threshold):
        model = ref()
        chain = _chain(model)
        variables = list(model.trainable_variables)
        if domain_head is not None:
            variables += domain_head.trainable_variables
        n_s = tf.shape(x_s)[0]
        pseudo_fraction = tf.constant(0.0)
        with tf.GradientTape() as tape:
            if method == "source_only":
                task = xent(y_s, model(x_s, training=True))
                align = tf.constant(0.0)
            else:
                f = tf.concat([x_s, x_t], axis=0)
                for layer in chain[:-1]:
                    f = layer(f, training=True)
                logits = chain[-1](f, training=True)
                task = xent(y_s, logits[:n_s])
                f_s, f_t = f[:n_s], f[n_s:]
                if method == "coral":
                    align = coral_loss(f_s, f_t)
                elif method == "mmd":
                    align = mmd_loss(f_s, f_t)
                elif method == "dann":
                    domains = tf.concat([tf.zeros([n_s, 1]), tf.ones([tf.shape(x_t)[0], 1])], 0)
                    align = bce(domains, domain_head(f, training=True))
                else:  # self_training
                    logits_t = logits[n_s:]
                    probs = tf.stop_gradient(tf.nn.softmax(logits_t))
                    mask = tf.cast(tf.reduce_max(probs, axis=1) >= threshold, tf.float32)
                    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                        tf.argmax(probs, axis=1), logits_t
                    )
                    align = tf.reduce_mean(mask * ce)
                    pseudo_fraction = tf.reduce_mean(mask)
            scale = 1.0 if method == "dann" else weight
            loss = task + scale * align
        grads = tape.gradient(loss, variables)
        optimizer.apply(grads, variables)
        return tf.stack([task, align, pseudo_fraction])

    return step


# model -> {method: (step, optimizer, domain_head)}; weak keys, so a dropped model frees it.
_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled_step(model, method, width, seed):
    steps = _STEPS.setdefault(model, {})
    if method in steps:
        step, optimizer, domain_head = steps[method]
        reset_optimizer(optimizer)
    else:
        optimizer = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.0, epsilon=1e-8)
        domain_head = build_domain_head(width) if method == "dann" else None
        step = _make_step(model, method, optimizer, domain_head)
        steps[method] = (step, optimizer, domain_head)
    if domain_head is not None:  # a fresh, seeded initialisation for every run
        for i, layer in enumerate(domain_head.layers[1:]):
            kernel, bias = layer.kernel, layer.bias
            init = keras.initializers.GlorotUniform(seed=seed * 10 + i)
            kernel.assign(init(kernel.shape))
            bias.assign(keras.ops.zeros_like(bias))
    return step, optimizer, domain_head


def adapt(
    model: keras.Model,
    X_source,
    y_source,
    X_target,
    *,
    method: str = "dann",
    num_steps: int = 300,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight: float | None = None,
    threshold: float = 0.9,
    seed: int = 0,
    quiet: bool = False,
    desc: str | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place on labelled source and unlabelled target images.

    Taught in :ref:`ch-domain-adaptation`.

    Same arguments, defaults and result as :func:`tlcourse.torch.adapt`. The
    model must be a chain of layers whose last one is the classifier head (as the digit
    net is); the features are the output of the layer before it.
    """
    X_source, y_source, X_target, weight = check_adapt_inputs(
        X_source,
        y_source,
        X_target,
        num_classes=num_outputs(model),
        method=method,
        num_steps=num_steps,
        batch_size=batch_size,
        threshold=threshold,
        weight=weight,
    )
    chain = _chain(model)
    X_s, X_t = to_array(X_source), to_array(X_target)
    width = int(chain[-1].kernel.shape[0])
    step, optimizer, domain_head = _compiled_step(model, method, width, seed)
    rng = np.random.default_rng(seed)
    source_batches = batch_indices(rng, len(X_s), batch_size)
    target_batches = batch_indices(rng, len(X_t), batch_size)
    history: dict[str, list[float]] = {"loss": [], "align": []}
    weight_t, threshold_t = tf.constant(weight, tf.float32), tf.constant(threshold, tf.float32)
    bar = tqdm(range(num_steps), desc=desc or method, disable=quiet, mininterval=1.0)
    for i in bar:
        optimizer.learning_rate.assign(lr * cosine_factor(i, num_steps, "cosine"))
        if domain_head is not None:
            domain_head.layers[0].lambda_ = weight * dann_lambda(i / max(num_steps - 1, 1))
        i_s = next(source_batches)
        # source_only never looks at the target; the step ignores the argument.
        i_t = next(target_batches) if method != "source_only" else i_s[:2]
        x_t = X_t[i_t] if method != "source_only" else X_s[i_t]
        task, align, fraction = step(X_s[i_s], y_source[i_s], x_t, weight_t, threshold_t).numpy()
        history["loss"].append(float(task))
        history["align"].append(float(align))
        if method == "self_training":
            history.setdefault("pseudo_fraction", []).append(float(fraction))
        if i % 20 == 0:
            bar.set_postfix(loss=f"{task:.3f}", align=f"{align:.3f}")
    return history


def adapt_batchnorm(model: keras.Model, X_target, *, batch_size: int = 500) -> keras.Model:
    """AdaBN: re-estimate every BatchNorm layer's statistics on target images.

    Taught in :ref:`ch-domain-adaptation`.

    Same as :func:`tlcourse.torch.adapt_batchnorm`: the moving statistics become
    averages over ``X_target`` (each batch weighted by its size); no weight changes.
    """
    X_target, _ = check_images_and_labels(X_target)
    X = to_array(X_target)
    norms = [
        layer for layer in _all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
    ]
    if not norms:
        raise ValueError("The model has no BatchNorm layers to adapt.")
    momenta = [layer.momentum for layer in norms]
    for start in range(0, len(X), batch_size):
        batch = X[start : start + batch_size]
        for layer in norms:  # a running average in which each image weighs the same
            layer.momentum = start / (start + len(batch))
        model(batch, training=True)
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
    return model


def _all_layers(layer):
    for child in getattr(layer, "layers", []):
        yield child
        yield from _all_layers(child)
