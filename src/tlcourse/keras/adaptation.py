"""Unsupervised domain adaptation in Keras 3 (twin: ``tlcourse.torch.adaptation``).

The same four alignment losses and the same schedule as the PyTorch twin, trained the Keras
way: :class:`DomainAdapter` is a ``keras.Model`` that holds the classifier (and DANN's
domain head) and overrides ``train_step``; :func:`adapt` compiles one and drives it with
``fit``. ``fit`` traces the step once per adapter (seconds on two CPU cores), so the last
adapter of each method is kept on the classifier and reused when the same model object is
adapted again (after resetting its weights, e.g. once per seed), with the optimiser's state
reset and DANN's domain head re-initialised.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tlcourse.adaptation import EXTRA_LOGS, batch_indices, check_adapt_inputs
from tlcourse.checks import check_images_and_labels, check_positive_ints
from tlcourse.keras.adversarial import GradientReversal
from tlcourse.keras.models import num_outputs, to_array, torch_like_dense
from tlcourse.keras.optim import reset_optimizer


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
            torch_like_dense(hidden, in_features, name="hidden", activation="relu"),
            torch_like_dense(1, hidden, name="domain_logit"),
        ],
        name="domain_head",
    )


def _chain(model: keras.Model) -> list:
    chain = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(chain) < 2:
        raise ValueError("adapt needs a model whose last layer is the classifier head.")
    return chain


class DomainAdapter(keras.Model):
    """A classifier trained by ``fit`` on labelled source and unlabelled target batches.

    Taught in :ref:`ch-domain-adaptation`.

    ``fit`` takes batches ``(x_source, y_source, x_target)``. Each ``train_step`` adds to
    the cross-entropy on the source batch ``weight`` times the alignment loss of
    ``method`` between the two batches' features (the output of the layer before the
    head), exactly as :func:`tlcourse.torch.adapt` does. The learning rate follows the
    cosine schedule from ``lr`` to 0 over ``num_steps`` and, for DANN, the reversal
    strength follows :func:`tlcourse.adaptation.dann_lambda`; both are computed in the step
    from the optimiser's step counter. The run's settings are variables (set them with
    :meth:`configure`), so that one traced step serves every run. Each step returns
    ``loss`` (the task loss), ``align`` and ``extra``: self-training's share of confident
    target predictions, or DANN's domain-head accuracy on the step's batches (0 for the
    other methods). :func:`adapt` builds one and feeds it.

    Parameters
    ----------
    classifier : keras.Model
        A chain of layers whose last one is the classifier head (as the digit net is).
    method : str
        One of :data:`tlcourse.adaptation.METHODS`.
    """

    def __init__(self, classifier: keras.Model, method: str, **kwargs):
        super().__init__(**kwargs)
        self.classifier, self.method = classifier, method
        width = int(_chain(classifier)[-1].kernel.shape[0])
        self.domain_head = build_domain_head(width) if method == "dann" else None
        self.xent = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)
        defaults = {"weight": 1.0, "threshold": 0.9, "lr": 1e-3, "num_steps": 1.0}
        self.settings = {
            name: self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(value),
                dtype="float64",  # schedules in double precision, as the twin computes them
                trainable=False,
                name=name,
            )
            for name, value in defaults.items()
        }
        self.built = True  # its parts are built models
        object.__setattr__(self, "records", None)  # per-step logs; see configure

    def configure(self, *, weight: float, threshold: float, lr: float, num_steps: int):
        """Set the next run's loss weight, confidence threshold, initial rate and length."""
        values = {"weight": weight, "threshold": threshold, "lr": lr, "num_steps": num_steps}
        for name, value in values.items():
            self.settings[name].assign(float(value))
        # Each step writes (loss, align, extra) into row ``step`` of ``records``,
        # so that fit can run many steps per call (steps_per_execution) and the history
        # still has every step. A longer run needs a larger buffer, and a new trace.
        if self.records is None or self.records.shape[0] < num_steps:
            records = tf.Variable(tf.zeros((num_steps, 3)), trainable=False)
            object.__setattr__(self, "records", records)  # untracked: not a weight
            self.train_function = None

    def train_variables(self) -> list:
        """What the optimiser updates: the classifier's trainable weights, then the head's."""
        variables = list(self.classifier.trainable_variables)
        if self.domain_head is not None:
            variables += self.domain_head.trainable_variables
        return variables

    def train_step(self, data):
        x_s, y_s, x_t = data
        settings = self.settings
        step = tf.cast(self.optimizer.iterations, tf.float64)
        total = settings["num_steps"]
        # cosine_factor and dann_lambda of tlcourse.adaptation, in the graph (float64, then
        # rounded to float32, as the PyTorch twin's Python floats are)
        progress = tf.clip_by_value(step / tf.maximum(total, 1.0), 0.0, 1.0)
        rate = settings["lr"] * (0.5 * (1.0 + tf.cos(np.pi * progress)))
        self.optimizer.learning_rate.assign(tf.cast(rate, tf.float32))
        if self.domain_head is not None:
            p = step / tf.maximum(total - 1.0, 1.0)
            strength = settings["weight"] * (2.0 / (1.0 + tf.exp(-10.0 * p)) - 1.0)
            self.domain_head.layers[0]._lambda.assign(tf.cast(strength, tf.float32))
        weight = tf.cast(settings["weight"], tf.float32)
        threshold = tf.cast(settings["threshold"], tf.float32)
        chain, method = _chain(self.classifier), self.method
        variables = self.train_variables()
        n_s = tf.shape(x_s)[0]
        extra = tf.constant(0.0)
        with tf.GradientTape() as tape:
            if method == "source_only":
                task = self.xent(y_s, self.classifier(x_s, training=True))
                align = tf.constant(0.0)
            else:
                f = tf.concat([x_s, x_t], axis=0)
                for layer in chain[:-1]:
                    f = layer(f, training=True)
                logits = chain[-1](f, training=True)
                task = self.xent(y_s, logits[:n_s])
                f_s, f_t = f[:n_s], f[n_s:]
                if method == "coral":
                    align = coral_loss(f_s, f_t)
                elif method == "mmd":
                    align = mmd_loss(f_s, f_t)
                elif method == "dann":
                    domains = tf.concat([tf.zeros([n_s, 1]), tf.ones([tf.shape(x_t)[0], 1])], 0)
                    domain_logits = self.domain_head(f, training=True)
                    align = self.bce(domains, domain_logits)
                    said_target = tf.cast(domain_logits > 0.0, tf.float32)
                    extra = tf.reduce_mean(tf.cast(said_target == domains, tf.float32))
                else:  # self_training
                    logits_t = logits[n_s:]
                    probs = tf.stop_gradient(tf.nn.softmax(logits_t))
                    mask = tf.cast(tf.reduce_max(probs, axis=1) >= threshold, tf.float32)
                    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                        tf.argmax(probs, axis=1), logits_t
                    )
                    align = tf.reduce_mean(mask * ce)
                    extra = tf.reduce_mean(mask)
            scale = 1.0 if method == "dann" else weight
            loss = task + scale * align
        grads = tape.gradient(loss, variables)
        self.records[tf.cast(self.optimizer.iterations, tf.int32)].assign(
            tf.stack([task, align, extra])
        )
        self.optimizer.apply(grads, variables)
        return {"loss": task, "align": align, "extra": extra}


# Steps per call into TensorFlow: fit runs them in one traced loop, with no Python between
# steps (the per-step logs go to DomainAdapter.records).
STEPS_PER_EXECUTION = 25


def _adapter_for(model: keras.Model, method: str, seed: int) -> DomainAdapter:
    """The compiled DomainAdapter of this model and method: the kept one, or a new one."""
    kept = getattr(model, "_tlcourse_adapters", None)
    if kept is None:
        kept = {}
        object.__setattr__(model, "_tlcourse_adapters", kept)  # untracked: not a layer
    adapter = kept.get(method)
    if adapter is None:
        adapter = DomainAdapter(model, method)
        adapter.compile(
            optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.0, epsilon=1e-8),
            steps_per_execution=STEPS_PER_EXECUTION,
        )
        # Built before fit traces train_step, which then traces once (see keras.fit).
        adapter.optimizer.build(adapter.train_variables())
        kept[method] = adapter
    elif adapter.optimizer.built:
        reset_optimizer(adapter.optimizer)
    if adapter.domain_head is not None:  # a fresh, seeded initialisation for every run
        for i, layer in enumerate(adapter.domain_head.layers[1:]):
            kernel, bias = layer.kernel, layer.bias
            init = keras.initializers.GlorotUniform(seed=seed * 10 + i)
            kernel.assign(init(kernel.shape))
            bias.assign(keras.ops.zeros_like(bias))
    return adapter


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
    X_s, X_t = to_array(X_source), to_array(X_target)
    adapter = _adapter_for(model, method, seed)
    adapter.configure(weight=weight, threshold=threshold, lr=lr, num_steps=num_steps)
    # The batches the PyTorch twin draws, in the same order, fed to fit one step at a time.
    rng = np.random.default_rng(seed)
    source_batches = batch_indices(rng, len(X_s), batch_size)
    target_batches = batch_indices(rng, len(X_t), batch_size)
    if method == "source_only":  # never looks at the target; the step ignores x_t
        i_s = np.stack([next(source_batches) for _ in range(num_steps)])
        i_t, X_other = i_s[:, :2], X_s
    else:  # one source batch, then one target batch, step after step: the twin's order
        pairs = [(next(source_batches), next(target_batches)) for _ in range(num_steps)]
        i_s, i_t = (np.stack(side) for side in zip(*pairs, strict=True))
        X_other = X_t
    X_s_t, y_s_t, X_t_t = tf.constant(X_s), tf.constant(y_source), tf.constant(X_other)
    batches = tf.data.Dataset.from_tensor_slices((i_s, i_t)).map(
        lambda a, b: (tf.gather(X_s_t, a), tf.gather(y_s_t, a), tf.gather(X_t_t, b))
    )
    bar = tqdm(total=num_steps, desc=desc or method, disable=quiet, mininterval=1.0)

    def progress(batch, logs):  # called once per execution; ``batch`` is its last step
        bar.update(min(batch + 1, num_steps) - bar.n)
        bar.set_postfix(loss=f"{logs['loss']:.3f}", align=f"{logs['align']:.3f}")

    try:
        adapter.fit(
            batches,
            epochs=1,
            verbose=0,
            shuffle=False,  # the batches are drawn above, in order
            callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=progress)],
        )
    finally:
        bar.close()
    loss, align, extra = adapter.records.numpy()[:num_steps].T.astype(float)
    history: dict[str, list[float]] = {"loss": loss.tolist(), "align": align.tolist()}
    if method in EXTRA_LOGS:
        history[EXTRA_LOGS[method]] = extra.tolist()
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
