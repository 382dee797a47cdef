"""Every domain-adaptation method for several seeds, in either framework.

Taught in :ref:`ch-domain-adaptation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType

import numpy as np
from tqdm import tqdm

from tlcourse.adaptation import check_method
from tlcourse.experiments.few_shot import reuse_model
from tlcourse.selection import mean_entropy

# How each criterion of :func:`selection_scores` ranks runs: True if higher is better.
CRITERIA = {"source accuracy": True, "target entropy": False, "target accuracy (oracle)": True}


def run_adaptation(
    backend: ModuleType,
    make_model: Callable[[], object],
    source: tuple[np.ndarray, np.ndarray],
    target_train: tuple[np.ndarray, np.ndarray],
    target_test: tuple[np.ndarray, np.ndarray],
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    on_run_end: Callable[[str, int, object], None] | None = None,
    histories: dict | None = None,
    quiet: bool = False,
    **adapt_kwargs,
) -> np.ndarray:
    """Adapt a fresh copy of a model with each method and seed; score it on target test data.

    Besides :data:`tlcourse.adaptation.METHODS`, two reference rows are understood:

    - ``"adabn"``: the ``source_only`` run, then BatchNorm statistics re-estimated on the
      unlabelled target images (Li et al., 2018) -- no extra training;
    - ``"target_supervised"``: the same loop on the target's *labelled* training images
      (the upper bound; the only row that uses target labels).

    Parameters
    ----------
    backend : module
        :mod:`tlcourse.torch` or :mod:`tlcourse.keras`.
    make_model : callable
        Returns a new model to adapt (e.g. a clone of the pretrained source model). Its
        weights are copied into one model object per method, which every seed reuses
        (:func:`~tlcourse.experiments.reuse_model`: Keras keeps its traced step).
    source : (X, y)
        Labelled source images.
    target_train : (X, y)
        Target images for adaptation; their labels are used only by ``"target_supervised"``.
    target_test : (X, y)
        Held-out target images for scoring.
    methods : sequence of str
    seeds : sequence of int
    on_run_end : callable, optional
        ``on_run_end(method, seed, model)`` after each run, e.g. to keep features.
    histories : dict, optional
        Filled with ``{(method, seed): history}``, the per-step logs that ``backend.adapt``
        returned, for every run that trained (all but ``"adabn"``).
    quiet : bool, default False
        Hide the progress bar over runs.
    **adapt_kwargs
        Passed to ``backend.adapt`` (``num_steps``, ``batch_size``, ``lr``...).

    Returns
    -------
    np.ndarray
        Target test accuracies, shape ``(len(seeds), len(methods))``.
    """
    extra = ("adabn", "target_supervised")
    for method in methods:
        if method not in extra:
            check_method(method)
    if not methods or not seeds:
        raise ValueError("methods and seeds must be non-empty.")
    X_s, y_s = source
    X_t, y_t = target_train
    acc = np.zeros((len(seeds), len(methods)))
    runs = [(i, j) for i in range(len(seeds)) for j in range(len(methods))]
    source_only: dict[int, object] = {}  # per seed, for "adabn" to start from
    kept: dict = {}  # one model per method, reset for every seed (see reuse_model)
    for i, j in tqdm(runs, desc=f"{backend.__name__} adaptation runs", disable=quiet):
        seed, method = int(seeds[i]), methods[j]
        backend.set_seed(seed)
        kwargs = {**adapt_kwargs, "seed": seed, "quiet": True}
        if method == "adabn" and seed in source_only:
            model = backend.clone_model(source_only[seed])
        else:
            model = reuse_model(backend, kept, method, make_model())
            train_as = "source_only" if method in extra else method
            if method == "target_supervised":
                # The target's labelled images play the source; nothing to align.
                history = backend.adapt(model, X_t, y_t, X_t, method=train_as, **kwargs)
            else:
                history = backend.adapt(model, X_s, y_s, X_t, method=train_as, **kwargs)
            if histories is not None:
                histories[method, seed] = history
        if method == "source_only" and "adabn" in methods:
            source_only[seed] = backend.clone_model(model)
        if method == "adabn":
            backend.adapt_batchnorm(model, X_t)
        acc[i, j] = backend.evaluate(model, *target_test)["accuracy"]
        if on_run_end is not None:
            on_run_end(method, seed, model)
    return acc


def selection_scores(
    backend: ModuleType,
    model,
    *,
    source_val: tuple[np.ndarray, np.ndarray],
    target_unlabelled: np.ndarray,
    target_val: tuple[np.ndarray, np.ndarray],
) -> dict[str, float]:
    """Score one adapted model by each criterion of ``CRITERIA``.

    Taught in :ref:`ch-domain-adaptation`.

    ``"source accuracy"`` (on held-out labelled source images) and ``"target entropy"``
    (:func:`tlcourse.selection.mean_entropy` of the predictions on unlabelled target
    images) need no target label. ``"target accuracy (oracle)"`` needs ``target_val``'s
    labels, which unsupervised domain adaptation does not have: it is the oracle a
    label-free choice is measured against.

    Returns
    -------
    dict of str to float
        One value per criterion, keyed as ``CRITERIA``.
    """
    return {
        "source accuracy": backend.evaluate(model, *source_val)["accuracy"],
        "target entropy": mean_entropy(backend.predict(model, target_unlabelled)),
        "target accuracy (oracle)": backend.evaluate(model, *target_val)["accuracy"],
    }


def select_per_seed(
    scores: dict, candidates: Sequence[str], seeds: Sequence[int], criterion: str
) -> list[str]:
    """For each seed, the candidate method that ``criterion`` ranks best.

    Taught in :ref:`ch-domain-adaptation`.

    Parameters
    ----------
    scores : dict
        ``{(method, seed): selection_scores(...)}``, e.g. filled by ``on_run_end`` of
        :func:`run_adaptation`.
    candidates : sequence of str
        The methods to choose among (on a tie, the earlier one).
    seeds : sequence of int
    criterion : str
        A key of ``CRITERIA``.

    Returns
    -------
    list of str
        The chosen method for each seed, in the order of ``seeds``.

    Raises
    ------
    ValueError
        For an unknown criterion or a (method, seed) missing from ``scores``.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"Unknown criterion {criterion!r}; valid: {list(CRITERIA)}.")
    missing = [(m, s) for m in candidates for s in seeds if (m, s) not in scores]
    if missing or not candidates:
        raise ValueError(f"No scores for {missing or 'any candidate'}.")
    sign = 1.0 if CRITERIA[criterion] else -1.0
    return [
        max(candidates, key=lambda m, s=s: (sign * scores[m, s][criterion], -candidates.index(m)))
        for s in seeds
    ]
