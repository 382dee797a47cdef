"""Freezing, per-block learning rates and L2-SP in PyTorch (twin: ``tlcourse.keras.finetune``).

A *block* is a top-level child of the model (``model.named_children()``): ``block1`` ...
``head`` for the digit net, ``conv1`` ... ``layer4``, ``fc`` for a torchvision ResNet.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from tlcourse.finetune import blocks_down_to, blocks_until, check_block
from tlcourse.torch.training import fit

_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def block_names(model: nn.Module) -> list[str]:
    """The model's blocks (top-level children), in order.

    Taught in :ref:`ch-fine-tuning`.
    """
    names = [name for name, _ in model.named_children()]
    if not names:
        raise ValueError(f"{type(model).__name__} has no child modules to freeze or unfreeze.")
    return names


def _stay_in_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    # Replaces train() on a frozen block: whatever the outer model asks, the block stays
    # in eval mode, so its BatchNorm layers use and keep their pretrained statistics.
    self.training = False
    for module in self.children():
        module.train(False)
    return self


def is_frozen(block: nn.Module) -> bool:
    """Whether ``block`` was frozen by :func:`freeze` (no gradients, pinned to eval mode)."""
    return "train" in vars(block)


def freeze(model: nn.Module, until: str | None = None) -> nn.Module:
    """Freeze the blocks from the first up to and including ``until`` (all for ``None``).

    Taught in :ref:`ch-fine-tuning`.

    Freezing does two things, and a correct fine-tuning setup needs both:

    1. ``requires_grad_(False)`` on the block's parameters: no gradients, so the optimiser
       never changes them (and :func:`tlcourse.torch.fit` does not even hand them to it);
    2. the block is put in ``eval()`` mode *and kept there* when ``model.train()`` is
       called later, so its BatchNorm layers normalise with their pretrained running
       statistics and do not overwrite them with the target batches' statistics.

    Setting ``requires_grad = False`` alone (the usual recipe) skips step 2: BatchNorm's
    running statistics, which are buffers rather than parameters, keep moving.

    Parameters
    ----------
    model : torch.nn.Module
    until : str, optional
        Name of the last block to freeze.

    Returns
    -------
    torch.nn.Module
        ``model`` itself, for chaining.

    Raises
    ------
    ValueError
        For an unknown block name (the valid names are listed).
    """
    children = dict(model.named_children())
    for name in blocks_until(block_names(model), until):
        block = children[name]
        block.requires_grad_(False)
        block.train = types.MethodType(_stay_in_eval, block)
        block.eval()
    return model


def unfreeze(model: nn.Module, down_to: str | None = None) -> nn.Module:
    """Unfreeze the blocks from the last one down to and including ``down_to`` (all for None).

    Taught in :ref:`ch-fine-tuning`.

    The reverse of :func:`freeze`: parameters get ``requires_grad`` again and the blocks
    follow the model's train/eval mode again. Gradual unfreezing calls it with ``"head"``,
    then ``"block3"``, then ``"block2"`` ...

    Returns
    -------
    torch.nn.Module
        ``model`` itself.
    """
    children = dict(model.named_children())
    for name in blocks_down_to(block_names(model), down_to):
        block = children[name]
        block.requires_grad_(True)
        for module in block.modules():  # the block, or BatchNorm layers pinned inside it
            if is_frozen(module):
                del module.train
        block.train(model.training)
    return model


def freeze_batchnorm(model: nn.Module) -> nn.Module:
    """Keep every BatchNorm layer exactly as pretrained while the rest trains.

    Taught in :ref:`ch-fine-tuning`.

    Each BatchNorm layer's scale and shift get ``requires_grad=False`` and the layer stays
    in ``eval()`` mode (normalising with its pretrained running statistics, never updating
    them), whatever mode the model is put in. The Keras twin sets ``trainable = False`` on
    every BatchNormalization layer, which does the same. :func:`unfreeze` undoes it.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.
    """
    for module in model.modules():
        if isinstance(module, _BN_TYPES):
            module.requires_grad_(False)
            module.train = types.MethodType(_stay_in_eval, module)
            module.eval()
    return model


def trainable_summary(model: nn.Module) -> pd.DataFrame:
    """One row per block: trainable and frozen parameter counts and what BatchNorm does.

    Taught in :ref:`ch-fine-tuning`.

    The ``batchnorm statistics`` column says what happens to the block's BatchNorm running
    statistics when the model trains: ``"fixed"`` for a block frozen with :func:`freeze`,
    or for BatchNorm layers frozen with :func:`freeze_batchnorm`, ``"updated"`` otherwise
    (also for a block whose parameters were only given ``requires_grad = False``), empty
    for a block without BatchNorm.

    Returns
    -------
    pandas.DataFrame
        Indexed by block name.
    """
    rows = []
    for name, block in model.named_children():
        params = list(block.parameters())
        bns = [m for m in block.modules() if isinstance(m, _BN_TYPES)]
        fixed = is_frozen(block) or all(is_frozen(m) for m in bns)
        rows.append(
            {
                "block": name,
                "trainable": sum(p.numel() for p in params if p.requires_grad),
                "frozen": sum(p.numel() for p in params if not p.requires_grad),
                "batchnorm statistics": ("fixed" if fixed else "updated") if bns else "",
            }
        )
    return pd.DataFrame(rows).set_index("block")


def l2sp_penalty(
    model: nn.Module,
    reference: nn.Module | Mapping[str, torch.Tensor] | None = None,
    *,
    alpha: float = 1e-2,
    beta: float = 1e-2,
    exclude: Iterable[str] = (),
) -> torch.Tensor:
    """The L2-SP penalty of Li et al. (2018): pull weights towards their pretrained values.

    Taught in :ref:`ch-fine-tuning`.

    .. math:: \\Omega(w) = \\frac{\\alpha}{2}\\lVert w_S - w_S^0\\rVert^2
              + \\frac{\\beta}{2}\\lVert w_{\\bar S}\\rVert^2

    where :math:`w_S` are the transferred parameters, :math:`w_S^0` their values in
    ``reference`` and :math:`w_{\\bar S}` the new ones (the blocks in ``exclude``). With
    ``reference=None`` every parameter is pulled towards zero with strength ``alpha``:
    the plain L2 penalty ("weight decay" added to the loss), the baseline L2-SP improves on.
    Only trainable parameters count.

    Parameters
    ----------
    model : torch.nn.Module
    reference : torch.nn.Module or state dict, optional
        The pretrained starting point, matched by parameter name.
    alpha, beta : float, default 1e-2
    exclude : iterable of str
        Blocks that were not transferred (e.g. ``("head",)``, re-initialised).

    Returns
    -------
    torch.Tensor
        A scalar to add to the loss.

    Raises
    ------
    ValueError
        For an unknown block in ``exclude``, or a transferred parameter missing from
        ``reference`` or of another shape.
    """
    names = block_names(model)
    excluded = {check_block(name, names) for name in exclude}
    if reference is not None:
        reference = reference.state_dict() if isinstance(reference, nn.Module) else reference
    total = torch.zeros(())
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if reference is None:
            total = total + alpha / 2 * p.pow(2).sum()
        elif name.split(".")[0] in excluded:
            total = total + beta / 2 * p.pow(2).sum()
        else:
            ref = reference.get(name)
            if ref is None or ref.shape != p.shape:
                raise ValueError(
                    f"Parameter {name!r} has no reference value of shape {tuple(p.shape)}; "
                    "list its block in `exclude` if it is new."
                )
            total = total + alpha / 2 * (p - ref.detach().to(p.device)).pow(2).sum()
    return total


def reset_parameters(model: nn.Module, blocks: Iterable[str] = ("head",)) -> nn.Module:
    """Re-initialise the named blocks (e.g. a new head), drawing from torch's global RNG.

    Taught in :ref:`ch-fine-tuning`.
    """
    children = dict(model.named_children())
    for name in blocks:
        check_block(name, list(children))
        for module in children[name].modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return model


def _head_linear(model: nn.Module) -> nn.Linear:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last:
        raise ValueError("The model has no nn.Linear layer to serve as its head.")
    return last[-1]


def head_shape(model: nn.Module) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of the model's head, its last ``nn.Linear`` layer.

    Taught in :ref:`ch-fine-tuning`.
    """
    linear = _head_linear(model)
    return linear.in_features, linear.out_features


def set_head(model: nn.Module, weights, bias) -> nn.Module:
    """Set the head's weights from a ``(fan_in, fan_out)`` array (the Keras layout) and bias.

    Taught in :ref:`ch-fine-tuning`.

    With :func:`tlcourse.finetune.head_init_values` this draws a new head as either
    framework's default would.
    """
    linear = _head_linear(model)
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(np.asarray(weights).T))
        linear.bias.copy_(torch.as_tensor(np.asarray(bias)))
    return model


def fit_gradual_unfreezing(
    model: nn.Module,
    X,
    y,
    *,
    stages: Iterable[str] | None = None,
    epochs_per_stage: int = 2,
    **fit_kwargs,
) -> dict[str, list[float]]:
    """Gradual unfreezing (Howard & Ruder, 2018): train the head, then unfreeze one more
    block per stage, from the top down.

    Taught in :ref:`ch-fine-tuning`.

    Stage ``i`` freezes everything, unfreezes the blocks from the last one down to
    ``stages[i]`` and trains for ``epochs_per_stage`` epochs with a fresh optimiser and
    learning-rate schedule.

    Parameters
    ----------
    model
    X, y : array-like
        Training images and labels.
    stages : sequence of str, optional
        The block to unfreeze down to at each stage; default: every block, last first
        (``["head", "block3", "block2", "block1"]`` for the digit net).
    epochs_per_stage : int, default 2
    **fit_kwargs
        Passed to ``fit`` (``lr``, ``batch_size``, ``seed``, ``quiet``...).

    Returns
    -------
    dict
        The stages' histories, concatenated (``loss``, ``accuracy`` per epoch).
    """
    stages = list(reversed(block_names(model))) if stages is None else list(stages)
    history: dict[str, list[float]] = {}
    for stage in stages:
        unfreeze(freeze(model), down_to=stage)
        for key, values in fit(model, X, y, num_epochs=epochs_per_stage, **fit_kwargs).items():
            history.setdefault(key, []).extend(values)
    return history
