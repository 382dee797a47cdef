"""Optimisers in Keras 3: per-block learning rates, AdamW and the cosine schedule.

Every Keras training loop of the course (:func:`tlcourse.keras.fit`, the GAN, domain
adaptation and distributed loops) builds or resets its optimiser here. Keras has no
parameter groups, so per-block rates are applied by :class:`BlockwiseAdamW`. The twin is
``tlcourse.torch.optim``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras

from tlcourse.finetune import check_block_lrs
from tlcourse.keras.models import blocks_by_name
from tlcourse.schedules import SCHEDULES


def param_groups(model: keras.Model, lrs_by_block: Mapping[str, float]) -> list[dict]:
    """Groups of trainable variables with one learning rate per block.

    Taught in :ref:`ch-fine-tuning`.

    Same rules as :func:`tlcourse.torch.param_groups`; the groups feed
    :class:`BlockwiseAdamW` (which :func:`tlcourse.keras.fit` builds when ``lr`` is a
    mapping).

    Returns
    -------
    list of dict
        ``[{"variables": [...], "lr": ..., "name": block}, ...]``.
    """
    blocks = blocks_by_name(model)
    trainable = {name: list(block.trainable_weights) for name, block in blocks.items()}
    lrs = check_block_lrs(lrs_by_block, list(blocks), [n for n, vs in trainable.items() if vs])
    return [
        {"variables": trainable[name], "lr": lr, "name": name}
        for name, lr in lrs.items()
        if trainable[name]
    ]


class BlockwiseAdamW(keras.optimizers.Adam):
    """AdamW with a learning rate per group of variables (Keras has no parameter groups).

    Taught in :ref:`ch-fine-tuning`.

    Each variable's step uses ``schedule(step) * group_lr``, and its decoupled weight decay
    is ``schedule(step) * group_lr * weight_decay``, exactly as ``torch.optim.AdamW`` does
    with parameter groups and a multiplicative scheduler.

    Parameters
    ----------
    groups : list of dict
        From :func:`param_groups`.
    learning_rate : float or schedule, default 1.0
        A multiplier common to all groups (e.g. ``CosineDecay(1.0, steps)``).
    weight_decay : float, default 0.0
    **kwargs
        Passed to ``keras.optimizers.Adam`` (``epsilon``, ``beta_1``...).
    """

    def __init__(self, groups, learning_rate=1.0, weight_decay: float = 0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self._group_lr = {id(v): g["lr"] for g in groups for v in g["variables"]}
        self._decay = float(weight_decay)

    def build(self, variables):
        super().build(variables)
        missing = [v.path for v in variables if id(v) not in self._group_lr]
        if missing:
            raise ValueError(f"Variables without a learning rate group: {missing}.")
        self._factors = [self._group_lr[id(v)] for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors[self._get_variable_index(variable)]
        rate = keras.ops.cast(learning_rate, variable.dtype) * factor
        if self._decay:
            variable.assign(variable - variable * (rate * self._decay))
        super().update_step(gradient, variable, rate)


class CosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``lr * cosine_factor(step, total_steps, schedule)``, with its settings in variables.

    The same curve as ``keras.optimizers.schedules.CosineDecay(lr, total_steps)`` (or a
    constant ``lr``), and as :func:`tlcourse.schedules.cosine_factor` in the PyTorch twin.
    Keras bakes a schedule's Python numbers into the traced training step; these live in
    variables instead, so :meth:`set` can give a compiled model a new rate, length or
    shape of schedule without tracing the step again.
    """

    def __init__(self, lr: float, total_steps: int, schedule: str = "cosine"):
        self.lr = keras.Variable(0.0, trainable=False, name="base_learning_rate")
        self.total_steps = keras.Variable(1.0, trainable=False, name="total_steps")
        self.cosine = keras.Variable(1.0, trainable=False, name="cosine")
        self.set(lr, total_steps, schedule)

    def set(self, lr: float, total_steps: int, schedule: str = "cosine") -> None:
        """Change the base rate, the number of steps and the schedule in place."""
        if schedule not in SCHEDULES:
            raise ValueError(f"Unknown schedule {schedule!r}; valid: {SCHEDULES}.")
        self.lr.assign(float(lr))
        self.total_steps.assign(float(max(total_steps, 1)))
        self.cosine.assign(1.0 if schedule == "cosine" else 0.0)

    def __call__(self, step):
        ops = keras.ops
        progress = ops.minimum(ops.cast(step, "float32") / self.total_steps, 1.0)
        factor = 0.5 * (1.0 + ops.cos(math.pi * progress))
        return self.lr * (self.cosine * factor + (1.0 - self.cosine))

    def get_config(self):
        return {
            "lr": float(self.lr.numpy()),
            "total_steps": int(self.total_steps.numpy()),
            "schedule": "cosine" if float(self.cosine.numpy()) else "constant",
        }


def make_optimizer(
    model: keras.Model,
    lr: float | Mapping[str, float],
    schedule: str,
    steps: int,
    weight_decay: float,
) -> keras.optimizers.Optimizer:
    """Build AdamW with the learning-rate schedule inside it (Keras' way).

    Parameters
    ----------
    model : keras.Model
        Needed for per-block rates (:func:`param_groups`).
    lr : float or mapping of str to float
        One learning rate, or one per block (then a :class:`BlockwiseAdamW` whose common
        multiplier follows the schedule).
    schedule : {"cosine", "constant"}
        ``"cosine"`` decays along half a cosine over ``steps`` updates, the curve of
        ``keras.optimizers.schedules.CosineDecay`` and of
        :func:`tlcourse.schedules.cosine_factor`; ``"constant"`` keeps ``lr``.
    steps : int
        Updates planned in all.
    weight_decay : float
        Decoupled weight decay.

    Returns
    -------
    keras.optimizers.Optimizer
        Its schedule, a ``CosineSchedule``, is also its ``tlcourse_schedule``
        attribute.
    """
    if isinstance(lr, Mapping):
        rate = CosineSchedule(1.0, steps, schedule)
        optimizer = BlockwiseAdamW(
            param_groups(model, lr), learning_rate=rate, weight_decay=weight_decay, epsilon=1e-8
        )
    else:
        rate = CosineSchedule(lr, steps, schedule)
        optimizer = keras.optimizers.AdamW(
            learning_rate=rate, weight_decay=weight_decay, epsilon=1e-8
        )
    optimizer.tlcourse_schedule = rate
    return optimizer


def reset_optimizer(optimizer: keras.optimizers.Optimizer) -> None:
    """Put an optimiser back in its freshly built state (step 0, zero moments)."""
    for variable in optimizer.variables:
        if variable.name != "learning_rate":  # a constant rate is a variable too; keep it
            variable.assign(keras.ops.zeros_like(variable))
