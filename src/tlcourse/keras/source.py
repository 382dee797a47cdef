"""The pretrained source model in Keras (see :mod:`tlcourse.source`)."""

from __future__ import annotations

import keras

from tlcourse.keras.checkpoints import load_checkpoint, save_checkpoint
from tlcourse.keras.models import build_digit_net
from tlcourse.source import SourceRecipe, pretrain_source_model


def get_source_model(
    recipe: SourceRecipe | None = None,
    *,
    retrain: bool = False,
    quiet: bool = False,
    with_history: bool = False,
) -> keras.Model | tuple[keras.Model, dict]:
    """Return the pretrained source model, from the cache or trained now (and cached).

    Taught in :ref:`ch-pretraining`.

    Same arguments as :func:`tlcourse.torch.get_source_model`.
    """
    recipe = recipe or SourceRecipe()
    path = recipe.cache_path("keras", ".weights.h5")
    if path.exists() and not retrain:
        model = build_digit_net(width=recipe.width)
        history = load_checkpoint(path, model)["history"]
    else:
        from tlcourse import keras as backend  # here, not on top: it imports this module

        model, history = pretrain_source_model(backend, recipe, quiet=quiet)
        save_checkpoint(path, model, history=history)
    return (model, history) if with_history else model
