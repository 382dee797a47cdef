"""The pretrained source model in PyTorch (see :mod:`tlcourse.source`)."""

from __future__ import annotations

from torch import nn

from tlcourse.files import file_lock
from tlcourse.source import SourceRecipe, pretrain_source_model
from tlcourse.torch.checkpoints import load_checkpoint, save_checkpoint
from tlcourse.torch.models import build_digit_net


def get_source_model(
    recipe: SourceRecipe | None = None,
    *,
    retrain: bool = False,
    quiet: bool = False,
    with_history: bool = False,
) -> nn.Module | tuple[nn.Module, dict]:
    """Return the pretrained source model, from the cache or trained now (and cached).

    Taught in :ref:`ch-pretraining`.

    Parameters
    ----------
    recipe : SourceRecipe, optional
        Defaults to ``SourceRecipe()``.
    retrain : bool, default False
        Ignore the cache and train again (the result is identical: training is seeded).
    quiet : bool, default False
        Hide the progress bar.
    with_history : bool, default False
        Also return the training history.

    Returns
    -------
    torch.nn.Module, or (model, history)
        The model is in ``eval()`` mode.
    """
    recipe = recipe or SourceRecipe()
    path = recipe.cache_path("torch", ".pt")
    # Locked: a second process asking at the same time waits for this one's training.
    with file_lock(path.with_name(path.name + ".lock")):
        if path.exists() and not retrain:
            model = build_digit_net(width=recipe.width)
            history = load_checkpoint(path, model)["history"]
        else:
            from tlcourse import torch as backend  # here, not on top: it imports this module

            model, history = pretrain_source_model(backend, recipe, quiet=quiet)
            save_checkpoint(path, model, history=history)
    model.eval()
    return (model, history) if with_history else model
