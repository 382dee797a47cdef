"""Optimisers in Keras 3: per-block learning rates, AdamW and the cosine schedule.

Every Keras training loop of the course (:func:`tlcourse.keras.fit`, the GAN, domain
adaptation and distributed loops) builds or resets its optimiser here. Keras has no
parameter groups, so per-block rates are applied by :class:`BlockwiseAdamW`. The twin is
``tlcourse.torch.optim``.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from tlcourse.finetune import check_block_lrs
from tlcourse.keras.models import blocks_by_name


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
        ``"cosine"`` is ``keras.optimizers.schedules.CosineDecay`` over ``steps`` updates,
        the same curve as :func:`tlcourse.schedules.cosine_factor`.
    steps : int
        Updates planned in all.
    weight_decay : float
        Decoupled weight decay.

    Returns
    -------
    keras.optimizers.Optimizer
    """
    if isinstance(lr, Mapping):
        groups = param_groups(model, lr)
        rate = keras.optimizers.schedules.CosineDecay(1.0, steps) if schedule == "cosine" else 1.0
        return BlockwiseAdamW(groups, learning_rate=rate, weight_decay=weight_decay, epsilon=1e-8)
    rate = keras.optimizers.schedules.CosineDecay(lr, steps) if schedule == "cosine" else lr
    return keras.optimizers.AdamW(learning_rate=rate, weight_decay=weight_decay, epsilon=1e-8)


def reset_optimizer(optimizer: keras.optimizers.Optimizer) -> None:
    """Put an optimiser back in its freshly built state (step 0, zero moments)."""
    for variable in optimizer.variables:
        if variable.name != "learning_rate":  # a constant rate is a variable too; keep it
            variable.assign(keras.ops.zeros_like(variable))
