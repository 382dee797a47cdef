"""Choosing a hyperparameter on validation data carved out of the labelled examples.

Taught in :ref:`ch-fine-tuning`.

With ten labels per class there is no separate validation set to spare: the validation
labels come out of the same budget. :func:`stratified_folds` splits the labelled examples
into folds with every class in every fold, and :func:`select_on_validation` scores each
candidate by cross-validation over those folds and keeps the best. The test set is never
an argument: it cannot be used to choose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tlcourse.checks import check_seed


def stratified_folds(y, n_folds: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split positions ``0 .. len(y) - 1`` into ``n_folds`` (train, validation) pairs.

    Taught in :ref:`ch-fine-tuning`.

    Each class's positions are shuffled with ``seed`` and dealt round-robin into the folds,
    so every fold holds each class about equally often; fold ``i`` is the validation part of
    pair ``i`` and the rest is its training part. Every position is validated exactly once.

    Parameters
    ----------
    y : array-like
        Integer labels of the labelled examples, shape ``(N,)``.
    n_folds : int
        At least 2, and at most the size of the smallest class (every fold then holds
        every class at least once).
    seed : int, default 0

    Returns
    -------
    list of (np.ndarray, np.ndarray)
        Sorted positions into ``y``: ``(train, validation)`` for each fold.

    Raises
    ------
    ValueError
        For ``n_folds`` below 2 or above the smallest class's size, or labels that are not a
        1-D integer array.

    Example
    -------
    >>> folds = stratified_folds(np.repeat(np.arange(10), 10), n_folds=2, seed=0)
    >>> [(len(train), len(val)) for train, val in folds]
    [(50, 50), (50, 50)]
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) == 0:
        raise ValueError(f"y must be a non-empty 1-D integer array, got shape {y.shape}.")
    seed = check_seed(seed)
    smallest = int(np.unique(y, return_counts=True)[1].min())
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer of at least 2, got {n_folds!r}.")
    if n_folds > smallest:
        raise ValueError(
            f"n_folds={n_folds} is more than the smallest class has examples ({smallest})."
        )
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=int)
    for c in np.unique(y):
        positions = rng.permutation(np.flatnonzero(y == c))
        fold_of[positions] = np.arange(len(positions)) % n_folds
    return [(np.flatnonzero(fold_of != i), np.flatnonzero(fold_of == i)) for i in range(n_folds)]


@dataclass(frozen=True)
class Selection:
    """What :func:`select_on_validation` chose, and why.

    Attributes
    ----------
    best
        The candidate with the highest mean validation score (the first of them on a tie).
    scores : dict
        Mean validation score of every candidate, in the order given.
    """

    best: object
    scores: dict


def select_on_validation(
    candidates: Sequence,
    score: Callable[[object, np.ndarray, np.ndarray], float],
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
) -> Selection:
    """Score every candidate by cross-validation and keep the best.

    Taught in :ref:`ch-fine-tuning`.

    Parameters
    ----------
    candidates : sequence
        The values to choose from (learning rates, say), best listed first among equals: a
        tie keeps the earlier one.
    score : callable
        ``score(candidate, train, val)`` trains with ``candidate`` on the labelled examples
        at positions ``train`` and returns its score (accuracy, higher is better) on those
        at ``val``.
    folds : sequence of (train, val)
        From :func:`stratified_folds`.

    Returns
    -------
    Selection

    Raises
    ------
    ValueError
        For no candidates, no folds, or a score that is not a finite number.
    """
    if not len(candidates) or not len(folds):
        raise ValueError("select_on_validation needs at least one candidate and one fold.")
    scores = {}
    for candidate in candidates:
        values = [float(score(candidate, train, val)) for train, val in folds]
        if not np.isfinite(values).all():
            raise ValueError(f"score returned {values} for candidate {candidate!r}.")
        scores[candidate] = float(np.mean(values))
    best = max(scores, key=lambda c: (scores[c], -list(scores).index(c)))
    return Selection(best=best, scores=scores)


def mean_entropy(logits) -> float:
    """Mean Shannon entropy, in nats, of the softmax of each row of ``logits``.

    Taught in :ref:`ch-domain-adaptation`.

    A label-free criterion for choosing a domain-adaptation run: a model that is sure of
    its target predictions has a low entropy. It is also fooled by a model that is sure and
    wrong, which the chapter shows.

    Parameters
    ----------
    logits : array-like
        Shape ``(N, num_classes)``, ``N >= 1``.

    Returns
    -------
    float
        Between 0 and ``log(num_classes)``.

    Raises
    ------
    ValueError
        For logits that are not a non-empty 2-D array of finite numbers.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.size == 0 or not np.isfinite(logits).all():
        raise ValueError(f"logits must be a non-empty 2-D finite array, got {logits.shape}.")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-(np.exp(log_p) * log_p).sum(axis=1).mean())
