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
