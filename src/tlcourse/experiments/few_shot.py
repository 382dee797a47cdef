"""Few labels per class: the training recipes and the loop over seeds.

Taught in :ref:`ch-feature-extraction`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType

import numpy as np
from tqdm import tqdm

from tlcourse.data import TEST_PER_CLASS, make_few_shot_split

# Recipes for training the digit net from scratch on k labelled MNIST digits per class
# (None: all 300), tuned in the feature extraction chapter: small sets use small batches so
# that every run takes enough gradient steps.
SCRATCH_RECIPES: dict[int | None, dict[str, float]] = {
    1: {"num_epochs": 10, "batch_size": 4, "lr": 3e-3},
    5: {"num_epochs": 10, "batch_size": 8, "lr": 3e-3},
    10: {"num_epochs": 12, "batch_size": 16, "lr": 3e-3},
    50: {"num_epochs": 15, "batch_size": 32, "lr": 3e-3},
    None: {"num_epochs": 5, "batch_size": 128, "lr": 1e-2},
}
# The same for a linear probe on cached features (a much smaller model: more epochs or
# larger rates).
PROBE_RECIPES: dict[int | None, dict[str, float]] = {
    1: {"num_epochs": 30, "batch_size": 256, "lr": 1e-2},
    5: {"num_epochs": 10, "batch_size": 16, "lr": 2e-2},
    10: {"num_epochs": 10, "batch_size": 32, "lr": 2e-2},
    50: {"num_epochs": 8, "batch_size": 64, "lr": 2e-2},
    None: {"num_epochs": 6, "batch_size": 256, "lr": 2e-2},
}


def reuse_model(backend: ModuleType, kept: dict, key, fresh):
    """Return a model with ``fresh``'s weights: the one kept under ``key``, else ``fresh``.

    Keras traces a model's training step once per model object and keeps it on the model
    until the next ``compile`` (seconds on two CPU cores, more than a small run trains).
    A loop that builds a fresh model for every seed would trace it again each time; this
    keeps the first model of each ``key`` and copies every later fresh model's weights into
    it, so :func:`tlcourse.keras.fit` finds the same model with the same settings and
    reuses the traced step. The weights are exactly ``fresh``'s, so the result is the one a
    new model would give, in both frameworks.

    Raises
    ------
    ValueError
        If ``fresh`` does not have the same weights (names and shapes) as the kept model.
    """
    model = kept.setdefault(key, fresh)
    if model is not fresh:
        report = backend.load_matching(model, fresh)
        if report.missing or report.mismatched or report.unexpected:
            raise ValueError(f"The fresh model does not match the kept one:\n{report.summary()}")
    return model


def run_few_shot(
    backend: ModuleType,
    make_model: Callable[[], object],
    X: np.ndarray,
    y: np.ndarray,
    *,
    k_per_class: int | None,
    seeds: Sequence[int],
    test_per_class: int = TEST_PER_CLASS,
    quiet: bool = False,
    desc: str | None = None,
    kept: dict | None = None,
    **fit_kwargs,
) -> np.ndarray:
    """Train a fresh model per seed on ``k_per_class`` labelled examples; return test accuracy.

    For each seed: draw the labelled examples with :func:`~tlcourse.data.make_few_shot_split`
    (the test set is the same for every seed), seed the framework, build a model with
    ``make_model()`` (for example a copy of a pretrained network, or a fresh one), train it
    with ``backend.fit(..., **fit_kwargs)`` and score it on the test set.

    Parameters
    ----------
    backend : module
        :mod:`tlcourse.torch` or :mod:`tlcourse.keras`.
    make_model : callable
        Returns the model to train; called after the framework is seeded.
    X, y : np.ndarray
        The whole labelled pool of the target domain.
    k_per_class : int or None
        Labelled examples per class (``None``: all non-test examples).
    seeds : sequence of int
    test_per_class : int, default ``tlcourse.data.TEST_PER_CLASS`` (200)
    quiet : bool, default False
        Hide the progress bar.
    desc : str, optional
        Label of the progress bar.
    kept : dict, optional
        Where the model object that every seed reuses is kept (see :func:`reuse_model`).
        Hand the same dict to several calls that train the same architecture, for example
        one per number of labels, and Keras traces the training step once for all of them.
    **fit_kwargs
        Passed to ``backend.fit`` (``num_epochs``, ``lr``, ``batch_size``, ...).

    Returns
    -------
    np.ndarray
        Test accuracies, shape ``(len(seeds),)``.
    """
    if not seeds:
        raise ValueError("seeds must be non-empty.")
    acc = np.zeros(len(seeds))
    kept = {} if kept is None else kept
    for i, seed in enumerate(tqdm(seeds, desc=desc or f"k={k_per_class}", disable=quiet)):
        split = make_few_shot_split(y, k_per_class, seed=int(seed), test_per_class=test_per_class)
        backend.set_seed(int(seed))
        model = reuse_model(backend, kept, None, make_model())
        backend.fit(model, X[split.train], y[split.train], seed=int(seed), quiet=True, **fit_kwargs)
        acc[i] = backend.evaluate(model, X[split.test], y[split.test])["accuracy"]
    return acc
