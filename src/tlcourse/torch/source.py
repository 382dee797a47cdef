"""The pretrained source model in PyTorch (see :mod:`tlcourse.source`)."""

from __future__ import annotations

from torch import nn

from tlcourse.data import make_synthetic_digits
from tlcourse.source import SourceRecipe
from tlcourse.torch.checkpoints import load_checkpoint, save_checkpoint
from tlcourse.torch.models import build_digit_net
from tlcourse.torch.training import fit, set_seed


def pretrain_source_model(recipe: SourceRecipe, *, quiet: bool = False):
    """Train the digit net on synthetic digits as ``recipe`` says; return (model, history)."""
    X, y = make_synthetic_digits(recipe.num_train, seed=recipe.seed)
    set_seed(recipe.seed)
    model = build_digit_net(width=recipe.width)
    history = fit(
        model,
        X,
        y,
        num_epochs=recipe.num_epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        seed=recipe.seed,
        quiet=quiet,
        desc="pretrain (PyTorch)",
    )
    return model, history


def get_source_model(
    recipe: SourceRecipe | None = None,
    *,
    retrain: bool = False,
    quiet: bool = False,
    with_history: bool = False,
) -> nn.Module | tuple[nn.Module, dict]:
    """Return the pretrained source model, from the cache or trained now (and cached).

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
    path = recipe.cache_path("torch")
    if path.exists() and not retrain:
        model = build_digit_net(width=recipe.width)
        history = load_checkpoint(path, model)["history"]
    else:
        model, history = pretrain_source_model(recipe, quiet=quiet)
        save_checkpoint(path, model, history=history)
    model.eval()
    return (model, history) if with_history else model
