"""The course's pretrained source model, trained once and cached for every chapter.

The pretraining chapter shows how the model is made; later chapters call
:func:`tlcourse.torch.get_source_model` or :func:`tlcourse.keras.get_source_model` so
that each of them also runs on its own. The first call trains
the model (deterministically, well under a minute on two CPU cores) and caches its weights
under :func:`tlcourse.data.get_cache_dir`; later calls load them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

from tlcourse.data import get_cache_dir, make_synthetic_digits, source_fingerprint


@dataclass(frozen=True)
class SourceRecipe:
    """How the source model is pretrained on synthetic digits.

    Attributes
    ----------
    num_train : int
        Synthetic training images (rendered with ``seed``).
    seed : int
        Seed of the data, the initialisation and the shuffling.
    width : int
        ``build_digit_net(width=...)``.
    num_epochs, batch_size, lr
        ``fit`` arguments (AdamW with a cosine schedule).
    """

    num_train: int = 20_000
    seed: int = 0
    width: int = 16
    num_epochs: int = 4
    batch_size: int = 128
    lr: float = 1e-2

    def cache_path(self, tag: str, suffix: str) -> Path:
        """Where the weights of this recipe are cached, as ``digit_net_{tag}_{hash}{suffix}``.

        Each half names its own file (``tag="torch", suffix=".pt"`` in
        ``tlcourse.torch.source``, ``"keras", ".weights.h5"`` in
        ``tlcourse.keras.source``). The name hashes the recipe and the package source
        (:func:`tlcourse.data.source_fingerprint`), so weights trained by older code are never
        loaded: they are trained again.
        """
        key = json.dumps({**asdict(self), "code": source_fingerprint()}, sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return get_cache_dir() / "source_models" / f"digit_net_{tag}_{digest}{suffix}"


def pretrain_source_model(backend: ModuleType, recipe: SourceRecipe, *, quiet: bool = False):
    """Train the digit net on synthetic digits as ``recipe`` says; return (model, history).

    The same code serves both frameworks: ``backend`` is :mod:`tlcourse.torch` or
    :mod:`tlcourse.keras`.
    """
    X, y = make_synthetic_digits(recipe.num_train, seed=recipe.seed)
    backend.set_seed(recipe.seed)
    model = backend.build_digit_net(width=recipe.width)
    history = backend.fit(
        model,
        X,
        y,
        num_epochs=recipe.num_epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        seed=recipe.seed,
        quiet=quiet,
        desc=f"pretrain ({backend.__name__})",
    )
    return model, history
