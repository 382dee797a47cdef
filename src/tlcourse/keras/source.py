"""The pretrained source model in Keras: the PyTorch one, ported (see :mod:`tlcourse.source`)."""

from __future__ import annotations

import keras

from tlcourse.keras.models import build_digit_net
from tlcourse.port import port_to_keras
from tlcourse.source import SourceRecipe


def get_source_model(
    recipe: SourceRecipe | None = None,
    *,
    retrain: bool = False,
    quiet: bool = False,
    with_history: bool = False,
) -> keras.Model | tuple[keras.Model, dict]:
    """Return the course's source model as a Keras digit net: the PyTorch weights, ported.

    Taught in :ref:`ch-pretraining`.

    Both frameworks start every later experiment from *one* source model, so that the two
    columns of a side-by-side table differ by the frameworks' training alone, not by two
    separately pretrained starting points. The model is
    :func:`tlcourse.torch.get_source_model` (trained once and cached), moved into
    :func:`build_digit_net` by :func:`tlcourse.port.port_to_keras`; the logits of the two
    agree to float32 rounding. Training the Keras twin itself is shown in the pretraining
    chapter with :func:`tlcourse.source.pretrain_source_model`.

    Same arguments as :func:`tlcourse.torch.get_source_model`; ``history`` is that of the
    PyTorch training run.
    """
    from tlcourse.torch.source import get_source_model as torch_source  # needs PyTorch

    recipe = recipe or SourceRecipe()
    trained, history = torch_source(recipe, retrain=retrain, quiet=quiet, with_history=True)
    model = build_digit_net(width=recipe.width)
    port_to_keras(trained, model)
    return (model, history) if with_history else model
