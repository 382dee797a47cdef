"""The pretrained source model in Keras (see :mod:`tlcourse.source`)."""

from __future__ import annotations

import json
import os

import keras

from tlcourse.data import make_synthetic_digits
from tlcourse.keras.checkpoints import load_checkpoint, save_checkpoint
from tlcourse.keras.models import build_digit_net
from tlcourse.keras.training import fit, set_seed
from tlcourse.source import SourceRecipe


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
        desc="pretrain (Keras)",
    )
    return model, history


def get_source_model(
    recipe: SourceRecipe | None = None,
    *,
    retrain: bool = False,
    quiet: bool = False,
    with_history: bool = False,
) -> keras.Model | tuple[keras.Model, dict]:
    """Return the pretrained source model, from the cache or trained now (and cached).

    Same arguments as :func:`tlcourse.torch.get_source_model`.
    """
    recipe = recipe or SourceRecipe()
    path = recipe.cache_path("keras")
    history_path = path.with_name(path.name.replace(".weights.h5", ".history.json"))
    if path.exists() and history_path.exists() and not retrain:
        model = build_digit_net(width=recipe.width)
        load_checkpoint(path, model)
        history = json.loads(history_path.read_text())
    else:
        model, history = pretrain_source_model(recipe, quiet=quiet)
        save_checkpoint(path, model)
        tmp = history_path.with_name(f".{os.getpid()}.{history_path.name}")
        tmp.write_text(json.dumps(history))
        os.replace(tmp, history_path)
    return (model, history) if with_history else model
