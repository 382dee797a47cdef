"""Optimisers in PyTorch: per-block learning rates, AdamW and the cosine schedule.

Every PyTorch training loop of the course (:func:`tlcourse.torch.fit`,
:func:`tlcourse.torch.adapt`, :func:`tlcourse.torch.distributed.fit_distributed`) builds
its optimiser here, so they all decay the learning rate the same way. The twin is
``tlcourse.keras.optim``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from tlcourse.finetune import check_block_lrs
from tlcourse.schedules import cosine_factor


def param_groups(model: nn.Module, lrs_by_block: Mapping[str, float]) -> list[dict]:
    """Optimiser parameter groups with one learning rate per block (discriminative rates).

    Taught in :ref:`ch-fine-tuning`.

    Parameters
    ----------
    model : torch.nn.Module
    lrs_by_block : mapping of str to float
        A learning rate for every block that has trainable parameters; frozen blocks may be
        left out (their parameters are not included).

    Returns
    -------
    list of dict
        ``[{"params": [...], "lr": ..., "name": block}, ...]``, ready for
        ``torch.optim.AdamW(groups, ...)``; only trainable parameters are included.

    Raises
    ------
    ValueError
        For an unknown block, a non-positive rate, or a trainable block without a rate.

    Example
    -------
    >>> groups = param_groups(model, {"block1": 1e-4, "block2": 3e-4, "block3": 1e-3,
    ...                               "head": 1e-2})
    >>> optimizer = torch.optim.AdamW(groups)
    """
    children = dict(model.named_children())
    trainable = {
        name: [p for p in block.parameters() if p.requires_grad] for name, block in children.items()
    }
    lrs = check_block_lrs(lrs_by_block, list(children), [n for n, ps in trainable.items() if ps])
    return [
        {"params": trainable[name], "lr": lr, "name": name}
        for name, lr in lrs.items()
        if trainable[name]
    ]


def make_optimizer(
    model: nn.Module,
    lr: float | Mapping[str, float],
    total_steps: int,
    *,
    schedule: str = "cosine",
    weight_decay: float = 0.0,
    params: Iterable[nn.Parameter] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Build AdamW and its learning-rate schedule (stepped once per batch).

    Parameters
    ----------
    model : torch.nn.Module
        Its trainable parameters are optimised (unless ``params`` or ``optimizer`` is given).
    lr : float or mapping of str to float
        One learning rate, or one per block (:func:`param_groups`; AdamW's default rate is
        then the largest of them, and every group keeps its own).
    total_steps : int
        Updates planned in all; the cosine schedule reaches 0 there.
    schedule : {"cosine", "constant"}, default "cosine"
        See :func:`tlcourse.schedules.cosine_factor`.
    weight_decay : float, default 0.0
        AdamW's decoupled weight decay.
    params : iterable of torch.nn.Parameter, optional
        Optimise these instead of the model's trainable parameters (e.g. the model's and a
        domain head's); only with a single ``lr``.
    optimizer : torch.optim.Optimizer, optional
        Schedule this optimiser instead of building an AdamW; only with a single ``lr``.

    Returns
    -------
    (torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR)

    Raises
    ------
    ValueError
        If nothing is trainable, or per-block rates come with ``params`` or ``optimizer``.

    Example
    -------
    >>> optimizer, scheduler = make_optimizer(model, 3e-3, total_steps=100)
    """
    if optimizer is None:
        if params is None:
            params = [p for p in model.parameters() if p.requires_grad]
            if not params:
                raise ValueError("The model has no trainable parameters: everything is frozen.")
        elif isinstance(lr, Mapping):
            raise ValueError("Give per-block learning rates or params, not both.")
        if isinstance(lr, Mapping):
            groups = param_groups(model, lr)
            optimizer = torch.optim.AdamW(groups, lr=max(lr.values()), weight_decay=weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    elif isinstance(lr, Mapping):
        raise ValueError("Give per-block learning rates or an optimizer, not both.")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, total_steps, schedule)
    )
    return optimizer, scheduler
