"""Seeding, training and evaluation in Keras 3 (twin: ``tlcourse.torch.training``)."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Mapping
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend.common import global_state
from keras.src.random import seed_generator
from keras.src.utils import rng_utils
from tqdm import tqdm

from tlcourse.batching import INFERENCE_BATCH_SIZE
from tlcourse.checks import check_images_and_labels
from tlcourse.data import epoch_order
from tlcourse.files import atomic_path
from tlcourse.keras.models import num_outputs, to_array
from tlcourse.keras.optim import make_optimizer, reset_optimizer
from tlcourse.schedules import SCHEDULES


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and Keras' random draws and make TensorFlow's ops deterministic.

    Taught in :ref:`ch-what-is-transfer-learning`.

    What ``keras.utils.set_random_seed`` does, except ``tf.random.set_seed``: TensorFlow's
    global seed drives only TensorFlow's own stateful random ops (``tf.random.uniform`` and
    the like), which Keras 3 and this package do not use (Keras draws from its
    ``SeedGenerator``, reset here). Setting it also clears TensorFlow's kernel caches, so
    every traced function (a model's training step, its prediction) is instantiated again
    on its next call: about half a second per training run on two CPU cores, more than
    a few-shot run takes to train. Call ``tf.random.set_seed`` yourself if your own code
    uses TensorFlow's random ops.

    Parameters
    ----------
    seed : int
        Non-negative seed.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the global state, as Keras seeds it
    # keras.utils.set_random_seed without its last step (see above): Keras' global
    # SeedGenerator is recreated from this seed on its next use.
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    tf.config.experimental.enable_op_determinism()


def fit(
    model: keras.Model,
    X,
    y,
    *,
    num_epochs: int = 5,
    batch_size: int = 128,
    lr: float | Mapping[str, float] = 3e-3,
    weight_decay: float = 0.0,
    schedule: str = "cosine",
    optimizer: keras.optimizers.Optimizer | None = None,
    penalty: Callable[[keras.Model], object] | None = None,
    validation_data: tuple | None = None,
    seed: int = 0,
    checkpoint_path: str | os.PathLike | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    quiet: bool = False,
    desc: str = "train",
) -> dict[str, list[float]]:
    """Train a classifier on in-memory arrays with ``model.fit``, AdamW and cross-entropy.

    Taught in :ref:`ch-what-is-transfer-learning`.

    Same arguments and result as :func:`tlcourse.torch.fit`. The model is compiled here,
    so changes to ``trainable`` made before the call take effect. Compiling makes Keras
    trace the training step again (about two seconds on two CPU cores), so when the same
    model object is trained again with the same trainable weights, weight decay, penalty
    and kind of ``lr`` (one rate, or the same per-block rates), for example once per seed
    after resetting its weights, ``fit`` keeps the compiled step, resets the optimiser's
    state and sets the new rate, schedule and number of steps in its
    ``CosineSchedule`` (in ``tlcourse.keras.optim``): the result is the same as after a fresh
    compile.

    Parameters
    ----------
    model : keras.Model
        Maps ``(N, H, W, C)`` images to logits.
    X, y : array-like
        Images ``(N, H, W)`` (or ``(N, H, W, C)``) and integer labels ``(N,)``.
    num_epochs, batch_size, weight_decay
        The usual; ``weight_decay`` is decoupled (AdamW), as in the PyTorch twin.
    lr : float or mapping of str to float, default 3e-3
        One learning rate, or one per block (discriminative learning rates, applied by
        :class:`tlcourse.keras.BlockwiseAdamW`; see :func:`tlcourse.keras.param_groups`).
    schedule : {"cosine", "constant"}, default "cosine"
        ``"cosine"`` decays the learning rate from ``lr`` to 0 over all steps (per batch),
        exactly as the PyTorch twin does; ``"constant"`` keeps it fixed.
    optimizer : keras.optimizers.Optimizer, optional
        Use this optimiser, with its own learning rate or schedule, instead of a new AdamW.
    penalty : callable, optional
        ``penalty(model)`` returns a scalar added to every batch's loss (for example
        :func:`tlcourse.keras.l2sp_penalty`); the reported ``loss`` includes it.
    validation_data : (X_val, y_val), optional
    seed : int, default 0
        Seeds the shuffling order and every other Keras random draw: ``fit`` calls
        :func:`set_seed` (Python, NumPy and Keras, globally), which the PyTorch twin
        does not do; the course's published numbers depend on both behaviours.
    checkpoint_path : path-like, optional
        A directory for ``keras.callbacks.BackupAndRestore``: after every epoch it saves
        weights, optimiser state and epoch there (plus ``history.json``), and a later
        ``fit`` with the same directory resumes where the interrupted one stopped. Same
        meaning as in the PyTorch twin, which writes one file instead; a directory here
        because ``BackupAndRestore`` (what the pretraining chapter teaches) needs one.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, logs)`` after each epoch.
    quiet : bool, default False
        Hide the progress bar.
    desc : str
        Label of the progress bar.

    Returns
    -------
    dict
        ``loss``, ``accuracy`` (and ``val_loss``, ``val_accuracy``) per epoch.
    """
    X, y = check_images_and_labels(X, y, num_classes=num_outputs(model))
    if num_epochs < 1 or batch_size < 1:
        raise ValueError("num_epochs and batch_size must be positive.")
    if not model.trainable_weights:
        raise ValueError("The model has no trainable weights: everything is frozen.")
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {schedule!r}; valid: {SCHEDULES}.")
    set_seed(seed)
    steps = num_epochs * -(-len(X) // batch_size)
    if optimizer is not None:
        if isinstance(lr, Mapping):
            raise ValueError("Give per-block learning rates or an optimizer, not both.")
        _compile(model, optimizer, penalty)
    else:
        # Everything the compiled training step depends on; equal key, same step. The
        # learning rate, the number of steps and the schedule are not among them: they
        # live in the optimiser's CosineSchedule variables.
        key = (
            tuple(id(w) for w in model.trainable_weights),
            tuple(sorted(lr.items())) if isinstance(lr, Mapping) else "one rate",
            float(weight_decay),
            penalty,  # compared with ==: equal tlcourse.finetune.Penalty values match
        )
        current = model.optimizer if model.compiled else None
        if current is not None and getattr(current, "tlcourse_fit_key", None) == key:
            # Keras keeps the traced step on the model (``model.train_function``) until the
            # next ``compile``: reuse it, from a freshly reset optimiser.
            reset_optimizer(current)
            current.tlcourse_schedule.set(1.0 if isinstance(lr, Mapping) else lr, steps, schedule)
        else:
            optimizer = make_optimizer(model, lr, schedule, steps, weight_decay)
            optimizer.tlcourse_fit_key = key  # what this compile was made for
            _compile(model, optimizer, penalty)
    if validation_data is not None:
        X_val, y_val = check_images_and_labels(*validation_data)
        validation_data = (to_array(X_val), y_val)
    callbacks: list[keras.callbacks.Callback] = []
    earlier: dict[str, list[float]] = {}
    if checkpoint_path is not None:
        checkpoint_path = Path(checkpoint_path)
        history_file = checkpoint_path / "history.json"
        if history_file.exists():
            earlier = json.loads(history_file.read_text())
        callbacks.append(
            keras.callbacks.BackupAndRestore(str(checkpoint_path), delete_checkpoint=False)
        )
        callbacks.append(_HistoryWriter(history_file, earlier))
    # Epochs done before an interruption. A finished run is restored and trains no further
    # epoch; its stream still needs one epoch to exist.
    start = min(len(earlier.get("loss", [])), num_epochs - 1)
    callbacks.append(EpochBar(num_epochs, desc=desc, disable=quiet))
    if on_epoch_end is not None:
        callbacks.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: on_epoch_end(epoch, dict(logs or {}))
            )
        )
    result = model.fit(
        epoch_batches(to_array(X), y, batch_size, seed, range(start, num_epochs)),
        epochs=num_epochs,
        steps_per_epoch=-(-len(X) // batch_size),
        shuffle=False,  # epoch_batches has shuffled them, epoch by epoch
        verbose=0,
        validation_data=validation_data,
        validation_batch_size=INFERENCE_BATCH_SIZE,
        callbacks=callbacks,
    )
    keys = ["loss", "accuracy", "val_loss", "val_accuracy"]
    return {
        k: earlier.get(k, []) + [float(v) for v in result.history.get(k, [])]
        for k in keys
        if k in result.history or k in earlier
    }


def _compile(model, optimizer, penalty):
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if penalty is None:
        loss = cross_entropy
    else:

        def loss(y_true, y_pred):
            return cross_entropy(y_true, y_pred) + penalty(model)

    # A metric object and a built optimiser: their variables exist before ``fit`` traces
    # the training step. Created inside the trace instead, they make TensorFlow trace the
    # step a second time (about a second per compile on two CPU cores). When the last
    # batch of an epoch is smaller, the graph that runs is not the same one, so results
    # differ from the double-traced step's by rounding; otherwise they are bitwise equal.
    metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=optimizer, loss=loss, metrics=[metric])
    model.optimizer.build(model.trainable_variables)


def epoch_batches(X: np.ndarray, y: np.ndarray, batch_size: int, seed: int, epochs: range):
    """One ``tf.data`` stream of every epoch's shuffled batches, for ``model.fit``.

    Epoch ``e`` visits the images in the order :func:`tlcourse.data.epoch_order` gives
    for ``(seed, e)``, in batches of ``batch_size`` (the last one smaller when
    ``batch_size`` does not divide ``len(X)``). Handing ``fit`` this one stream with
    ``steps_per_epoch`` costs Keras one iterator for the whole run; NumPy arrays instead
    make it build a new one every epoch, which on small data sets takes longer than the
    epoch's training steps.
    """
    orders = np.stack([epoch_order(len(X), seed, e) for e in epochs])
    X_t, y_t = tf.constant(X), tf.constant(y)
    # One worker thread and no autotuning: the gather is cheap, and extra input threads
    # only compete with the training step for the CPU cores.
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    return (
        tf.data.Dataset.from_tensor_slices(orders)
        .flat_map(lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch_size))
        .map(lambda idx: (tf.gather(X_t, idx), tf.gather(y_t, idx)))
        .with_options(options)
    )


class EpochBar(keras.callbacks.Callback):
    """A tqdm progress bar over epochs, with the last epoch's logs (Keras' own are per step).

    It defines no per-batch hook, so Keras need not hand it every step's logs.
    """

    def __init__(self, num_epochs: int, *, desc: str = "train", disable: bool = False):
        super().__init__()
        self.num_epochs, self.desc, self.disable = num_epochs, desc, disable
        self.bar = None

    def on_train_begin(self, logs=None):
        self.bar = tqdm(
            total=self.num_epochs,
            desc=self.desc,
            unit="epoch",
            disable=self.disable,
            mininterval=1.0,
        )

    def on_epoch_end(self, epoch, logs=None):
        self.bar.n = epoch + 1
        self.bar.set_postfix({k: f"{float(v):.3f}" for k, v in (logs or {}).items()})

    def on_train_end(self, logs=None):
        self.bar.close()


class _HistoryWriter(keras.callbacks.Callback):
    """Keep the per-epoch history next to a BackupAndRestore backup, for resumed runs."""

    def __init__(self, path: Path, earlier: dict[str, list[float]]):
        super().__init__()
        self.path, self.history = path, {k: list(v) for k, v in earlier.items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        with atomic_path(self.path) as tmp:  # a torn history.json would break resume
            tmp.write_text(json.dumps(self.history))


def predict(model: keras.Model, X, *, batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
    """Return the model's logits for ``X`` as a NumPy array, in inference mode.

    Taught in :ref:`ch-pretraining`.

    Parameters
    ----------
    model : keras.Model
    X : array-like
        Images ``(N, H, W)`` or ``(N, H, W, C)``.
    batch_size : int, default INFERENCE_BATCH_SIZE (256)

    Returns
    -------
    np.ndarray
        Logits of shape ``(N, num_outputs)``.
    """
    X, _ = check_images_and_labels(X)
    return run_in_batches(model, to_array(X), batch_size)


def run_in_batches(model: keras.Model, X, batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
    """``model``'s outputs for ``X`` in inference mode, ``batch_size`` rows at a time.

    ``predict_on_batch`` runs Keras' own compiled predict step, which the model keeps
    (``model.predict_function``) from one call to the next: about twice as fast on these
    models as calling the model eagerly, with the same values. Unlike ``model.predict``, it
    builds no data pipeline and callbacks per call, which matters for the many short calls
    of an experiment. A model made in a multi-replica ``tf.distribute`` scope is called
    eagerly instead: its ``predict_on_batch`` returns one copy of the outputs per replica.
    """
    if len(X) == 0:
        raise ValueError("Expected at least one input row, got none.")
    if model.distribute_strategy.num_replicas_in_sync > 1:
        run = lambda batch: keras.ops.convert_to_numpy(model(batch, training=False))  # noqa: E731
    else:
        run = lambda batch: np.asarray(model.predict_on_batch(batch))  # noqa: E731
    return np.concatenate([run(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])


def evaluate(
    model: keras.Model, X, y, *, batch_size: int = INFERENCE_BATCH_SIZE
) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(X, y)``, in inference mode.

    Taught in :ref:`ch-what-is-transfer-learning`.

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float}``.
    """
    X, y = check_images_and_labels(X, y, num_classes=num_outputs(model))
    logits = predict(model, X, batch_size=batch_size)
    # Log-softmax in NumPy keeps the loss identical to the PyTorch twin's.
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(y)), y].mean())
    return {"loss": loss, "accuracy": float((logits.argmax(1) == y).mean())}
