"""Reporting results over seeds: mean and spread."""

from __future__ import annotations

import numpy as np


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


def clearly_above(a, b, *, margin: float = 0.0) -> bool:
    """Whether ``a`` beats ``b`` by more than ``margin``, as the book's rule for a win says.

    ``a`` and ``b`` are results per seed, paired (seed ``i`` of both used the same data).
    A win holds on every seed, or its mean gap exceeds ``margin`` by more than the spread
    of the per-seed gaps (their sample standard deviation).

    Raises
    ------
    ValueError
        For fewer than two seeds or unequal lengths.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(
            f"Need two paired 1-D results of at least two seeds, got {a.shape}, {b.shape}."
        )
    gap = a - b
    return bool((gap > margin).all() or gap.mean() - margin > gap.std(ddof=1))


def no_clear_difference(a, b, *, margin: float) -> bool:
    """Whether neither of ``a`` and ``b`` beats the other by more than ``margin``.

    The book's test that two columns agree (the same experiment in PyTorch and in
    TensorFlow, say): by the rule of :func:`clearly_above`, no win of more than ``margin``
    either way, on every seed or beyond the spread of the per-seed gaps.

    Raises
    ------
    ValueError
        As :func:`clearly_above`.
    """
    return not clearly_above(a, b, margin=margin) and not clearly_above(b, a, margin=margin)
