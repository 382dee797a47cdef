"""Experiment loops that run unchanged on either framework.

A *backend* is :mod:`tlcourse.torch` or :mod:`tlcourse.keras`: both expose ``set_seed``,
``build_digit_net``, ``fit`` and ``evaluate`` with the same signatures, so one loop serves
both halves of a chapter and the two columns of a side-by-side table come from the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import ModuleType

import numpy as np
from tqdm import tqdm

from tlcourse.data import make_few_shot_split

Dataset = tuple[np.ndarray, np.ndarray]


def run_cross_domain(
    backend: ModuleType,
    train_domains: Mapping[str, Dataset],
    test_domains: Mapping[str, Dataset],
    seeds: Sequence[int],
    *,
    num_epochs: int | Mapping[str, int] = 3,
    batch_size: int = 128,
    lr: float = 3e-3,
    width: int = 16,
    quiet: bool = False,
) -> np.ndarray:
    """Train one digit net per (seed, training domain); score it on every test domain.

    Parameters
    ----------
    backend : module
        :mod:`tlcourse.torch` or :mod:`tlcourse.keras`.
    train_domains, test_domains : mapping of str to (X, y)
        Named data sets to train on and to test on.
    seeds : sequence of int
        One run per seed and training domain.
    num_epochs : int or mapping of str to int, default 3
        Epochs, for all training domains or per training domain.
    batch_size, lr, width
        Passed to ``build_digit_net`` (``width``) and ``fit``.
    quiet : bool, default False
        Hide the progress bar.

    Returns
    -------
    np.ndarray
        Accuracies of shape ``(len(seeds), len(train_domains), len(test_domains))``.

    Raises
    ------
    ValueError
        If ``seeds`` or a domain mapping is empty, or ``num_epochs`` lacks a domain.
    """
    if not seeds or not train_domains or not test_domains:
        raise ValueError("seeds, train_domains and test_domains must all be non-empty.")
    if isinstance(num_epochs, Mapping):
        missing = set(train_domains) - set(num_epochs)
        if missing:
            raise ValueError(f"num_epochs has no entry for training domains {sorted(missing)}.")
        epochs = dict(num_epochs)
    else:
        epochs = dict.fromkeys(train_domains, num_epochs)
    acc = np.zeros((len(seeds), len(train_domains), len(test_domains)))
    runs = [(s, t) for s in range(len(seeds)) for t in range(len(train_domains))]
    names = list(train_domains)
    for s, t in tqdm(runs, desc=f"{backend.__name__} runs", disable=quiet):
        name = names[t]
        backend.set_seed(int(seeds[s]))
        model = backend.build_digit_net(width=width)
        X, y = train_domains[name]
        backend.fit(
            model,
            X,
            y,
            num_epochs=epochs[name],
            batch_size=batch_size,
            lr=lr,
            seed=int(seeds[s]),
            quiet=True,
        )
        for j, (X_test, y_test) in enumerate(test_domains.values()):
            acc[s, t, j] = backend.evaluate(model, X_test, y_test)["accuracy"]
    return acc


def run_few_shot(
    backend: ModuleType,
    make_model: Callable[[], object],
    X: np.ndarray,
    y: np.ndarray,
    *,
    k_per_class: int | None,
    seeds: Sequence[int],
    test_per_class: int = 100,
    quiet: bool = False,
    desc: str | None = None,
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
    test_per_class : int, default 100
    quiet : bool, default False
        Hide the progress bar.
    desc : str, optional
        Label of the progress bar.
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
    for i, seed in enumerate(tqdm(seeds, desc=desc or f"k={k_per_class}", disable=quiet)):
        split = make_few_shot_split(y, k_per_class, seed=int(seed), test_per_class=test_per_class)
        backend.set_seed(int(seed))
        model = make_model()
        backend.fit(model, X[split.train], y[split.train], seed=int(seed), quiet=True, **fit_kwargs)
        acc[i] = backend.evaluate(model, X[split.test], y[split.test])["accuracy"]
    return acc


def format_mean_std(values: np.ndarray, *, axis: int = 0, percent: bool = True) -> np.ndarray:
    """Format ``mean ± std`` over ``axis`` (the seeds), e.g. ``"97.1 ± 0.4"``.

    Parameters
    ----------
    values : np.ndarray
        Results with the seeds along ``axis``.
    axis : int, default 0
    percent : bool, default True
        Multiply by 100 (accuracies as percentages).

    Returns
    -------
    np.ndarray
        Array of strings with ``axis`` removed. The standard deviation uses ``ddof=1``
        (the sample standard deviation across seeds).
    """
    values = np.asarray(values, dtype=float) * (100.0 if percent else 1.0)
    if values.shape[axis] < 2:
        raise ValueError("Need at least two seeds to report a spread.")
    mean = values.mean(axis=axis)
    std = values.std(axis=axis, ddof=1)
    return np.vectorize(lambda m, s: f"{m:.1f} ± {s:.1f}")(mean, std)
