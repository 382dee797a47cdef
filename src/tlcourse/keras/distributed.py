"""Data-parallel fine-tuning with ``tf.distribute`` (twin: ``tlcourse.torch.distributed``).

A :class:`tf.distribute.MirroredStrategy` keeps one replica of the model per device and
splits every global batch between them; the gradients are summed across replicas before
the optimiser step, so the replicas stay identical. Here the devices are logical CPUs
(:func:`use_logical_cpus`); on a GPU machine they are the GPUs, with no code change.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tlcourse.checks import check_images_and_labels, check_positive_ints
from tlcourse.keras.models import to_array
from tlcourse.keras.optim import make_optimizer


def use_logical_cpus(n: int) -> list[str]:
    """Split the machine's CPU into ``n`` logical devices, so a strategy can mirror over them.

    TensorFlow fixes its devices when it first runs an operation, so call this before
    anything else uses TensorFlow in the process.

    Parameters
    ----------
    n : int
        Number of logical CPU devices.

    Returns
    -------
    list of str
        The logical devices' names, e.g. ``["/device:CPU:0", "/device:CPU:1"]``.

    Raises
    ------
    RuntimeError
        If TensorFlow has already started with a different number of logical CPUs.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError as exc:  # already initialised: fine only if it already matches
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise RuntimeError(
                f"TensorFlow already runs with {have} logical CPU(s); use_logical_cpus({n}) "
                "must be called before TensorFlow runs anything (restart the kernel)."
            ) from exc
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def gradient_bytes_per_step(model: keras.Model) -> int:
    """Bytes of gradient that data parallelism all-reduces per step: the trainable ones."""
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.trainable_weights)


def fit_distributed(
    model: keras.Model,
    X,
    y,
    *,
    num_epochs: int = 2,
    global_batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    quiet: bool = False,
) -> dict[str, list[float]]:
    """Fine-tune ``model`` over the devices of the strategy it was built under.

    Build (or clone) the model inside ``strategy.scope()``; ``fit_distributed`` compiles
    it in the same scope and trains with ``model.fit``, which splits each global batch
    between the replicas. Every epoch shuffles with ``(seed, epoch)``, so a run under a
    one-device strategy sees exactly the same global batches. AdamW with a cosine
    schedule, as in :func:`tlcourse.keras.fit`.

    Parameters
    ----------
    model : keras.Model
        Built under the strategy to use (the default strategy: one device).
    X, y : array-like
        Training images ``(N, H, W)`` and integer labels.
    num_epochs, global_batch_size, lr, seed
        As in :func:`tlcourse.torch.distributed.fit_distributed`; ``global_batch_size``
        must be divisible by the number of replicas.
    quiet : bool, default False
        Hide the progress bar.

    Returns
    -------
    dict
        Per-epoch ``loss`` and the run's settings.
    """
    X, y = check_images_and_labels(X, y)
    strategy = model.distribute_strategy
    replicas = strategy.num_replicas_in_sync
    if num_epochs < 1:
        raise ValueError("num_epochs must be positive.")
    check_positive_ints(global_batch_size=global_batch_size)
    if global_batch_size % replicas:
        raise ValueError(
            f"global_batch_size={global_batch_size} must be divisible by the "
            f"{replicas} replicas of the strategy."
        )
    if not model.trainable_weights:
        raise ValueError("The model has no trainable weights: everything is frozen.")
    X = to_array(X)
    steps = num_epochs * -(-len(X) // global_batch_size)
    with strategy.scope():
        model.compile(
            optimizer=make_optimizer(model, lr, "cosine", steps, 0.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.optimizer.build(model.trainable_variables)  # so that fit traces its step once
    history: dict = {"loss": []}
    bar = tqdm(range(num_epochs), desc=f"MirroredStrategy x{replicas}", unit="epoch", disable=quiet)
    start = time.perf_counter()
    for epoch in bar:
        order = np.random.default_rng((seed, epoch)).permutation(len(X))
        data = tf.data.Dataset.from_tensor_slices((X[order], y[order])).batch(global_batch_size)
        logs = model.fit(data, epochs=1, verbose=0, shuffle=False).history
        history["loss"].append(float(logs["loss"][-1]))
        bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
    history.update(
        replicas=replicas,
        global_batch_size=global_batch_size,
        per_replica_batch_size=global_batch_size // replicas,
        seconds=time.perf_counter() - start,
        gradient_bytes_per_step=gradient_bytes_per_step(model),
    )
    return history
