"""Saving, restoring and partially restoring PyTorch models, the way it is done today.

Checkpoints are plain ``state_dict`` tensors saved with :func:`torch.save` and read with
``torch.load(..., weights_only=True)``, which refuses to unpickle arbitrary objects and so
is safe for files from elsewhere. The twin is ``tlcourse.keras.checkpoints``; both
halves' functions take the same arguments and return the same things.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from tlcourse.files import atomic_path
from tlcourse.restore import CheckpointError, RestoreReport, check_exclusions, match_entries


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    **metadata: int | float | str | list,
) -> Path:
    """Save model (and optionally optimiser and scheduler) state atomically.

    Taught in :ref:`ch-pretraining`.

    The file is written under a temporary name and then renamed, so an interruption
    never leaves a half-written checkpoint in place of the previous good one.

    Parameters
    ----------
    path : path-like
        Destination, conventionally ``*.pt``.
    model : torch.nn.Module
    optimizer, scheduler : optional
        Saved too, so that training can resume exactly.
    **metadata
        Plain values to store alongside (epoch, history, ...).

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    state = {"model": model.state_dict(), "metadata": metadata}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint safely (``weights_only=True``); raise a clear error if unreadable.

    Taught in :ref:`ch-pretraining`.

    Returns
    -------
    dict
        With key ``"model"`` (a state dict) and possibly ``"optimizer"``, ``"scheduler"``,
        ``"metadata"``. A bare state dict is wrapped as ``{"model": state_dict}``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    CheckpointError
        If the file is not a readable PyTorch checkpoint (truncated, corrupted, or holding
        objects that ``weights_only`` refuses).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for damaged files
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:200]}). The model was left unchanged."
        ) from err
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict.")
    if "model" not in state:
        state = {"model": state}
    return dict(state)


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> dict:
    """Restore a full checkpoint into ``model`` (and optimiser, scheduler); all or nothing.

    Taught in :ref:`ch-pretraining`.

    Every key and shape is checked *before* anything is copied, so a checkpoint of another
    architecture raises :class:`~tlcourse.restore.CheckpointError` and leaves the model
    as it was (``load_state_dict`` alone would copy the matching part first).

    Returns
    -------
    dict
        The metadata stored with :func:`save_checkpoint`.
    """
    state = read_checkpoint(path)
    model_state = model.state_dict()
    ckpt = state["model"]
    problems = [k for k in model_state if k not in ckpt]
    problems += [k for k in ckpt if k not in model_state]
    problems += [
        f"{k}: checkpoint {tuple(ckpt[k].shape)} vs model {tuple(v.shape)}"
        for k, v in model_state.items()
        if k in ckpt and tuple(ckpt[k].shape) != tuple(v.shape)
    ]
    if problems:
        raise CheckpointError(
            f"{path} does not fit this model ({len(problems)} problem(s), e.g. "
            f"{problems[:3]}). Nothing was loaded; use load_matching for a partial restore."
        )
    wanted = [(obj, key) for obj, key in ((optimizer, "optimizer"), (scheduler, "scheduler"))]
    for obj, key in wanted:  # checked before anything is copied: all or nothing
        if obj is not None and key not in state:
            raise CheckpointError(f"{path} has no {key} state to restore.")
    model.load_state_dict(ckpt)
    for obj, key in wanted:
        if obj is not None:
            obj.load_state_dict(state[key])
    return dict(state.get("metadata", {}))


def _valid_names(model: nn.Module) -> list[str]:
    # Only modules that hold state can be excluded (a ReLU has nothing to restore).
    return [
        name
        for name, module in model.named_modules()
        if name and next(iter(module.state_dict()), None) is not None
    ]


def load_matching(
    model: nn.Module,
    source: nn.Module | Mapping[str, torch.Tensor] | str | os.PathLike,
    exclude: Iterable[str] = (),
) -> RestoreReport:
    """Copy the entries of ``source`` whose names and shapes match ``model``; report the rest.

    Taught in :ref:`ch-pretraining`.

    This is what Caffe's "copy weights by layer name" became: matching by name, shapes
    checked, chosen layers excluded, and nothing silent. Entries that are not loaded keep
    their current values (usually a fresh initialisation).

    Parameters
    ----------
    model : torch.nn.Module
    source : torch.nn.Module, mapping or path-like
        A model, a state dict, or a file saved by :func:`save_checkpoint` or
        ``torch.save``.
    exclude : iterable of str
        Module names not to restore, e.g. ``("head",)`` or ``("fc",)``; a name excludes
        the module and everything inside it.

    Returns
    -------
    RestoreReport

    Raises
    ------
    ValueError
        For an excluded name that is not a module of ``model`` (the valid names are listed).
    CheckpointError
        If the checkpoint matches no entry of the model, or cannot be read.

    Example
    -------
    >>> report = load_matching(resnet, torchvision_state, exclude=["fc"])
    >>> report.skipped
    ['fc.weight', 'fc.bias']
    """
    exclude = check_exclusions(exclude, _valid_names(model))
    if isinstance(source, nn.Module):
        state = source.state_dict()
    elif isinstance(source, Mapping):
        state = source
    else:
        state = read_checkpoint(source)["model"]
    model_state = model.state_dict()
    report = match_entries(
        {k: tuple(v.shape) for k, v in model_state.items()},
        {k: tuple(v.shape) for k, v in state.items()},
        exclude,
        sep=".",
    )
    model.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    return report
