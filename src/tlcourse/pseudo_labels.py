"""Pseudo-labels for unlabelled images, chosen from a teacher's predictions, in NumPy.

Taught in :ref:`ch-semi-supervised`.

Self-training labels the unlabelled pool with a model's own predictions and trains on the
confident ones. Which ones count as confident is the whole method: a confidence threshold
alone lets the classes the teacher is surest of take over the pseudo-labels; a fixed
number per predicted class keeps the classes balanced whatever the teacher's calibration.
Framework-free: both halves' logits go through the same selection.
"""

from __future__ import annotations

import numpy as np


def softmax(logits) -> np.ndarray:
    """Row-wise softmax of ``(N, C)`` logits, computed stably in float64.

    Taught in :ref:`ch-semi-supervised`.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"Expected logits of shape (N, C) with N >= 1, C >= 2, got {z.shape}.")
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def select_pseudo_labels(
    logits, *, threshold: float | None = None, per_class: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Choose which unlabelled rows to pseudo-label, and with which class.

    Taught in :ref:`ch-semi-supervised`.

    Each row's pseudo-label is its most probable class. With ``threshold``, only rows
    whose top probability is at least ``threshold`` are kept; with ``per_class``, at most
    ``per_class`` rows per predicted class are kept, the most confident first (ties by
    position). Both may be given; at least one must be.

    Parameters
    ----------
    logits : array-like
        The teacher's logits for the unlabelled pool, shape ``(N, C)``.
    threshold : float, optional
        In ``(0, 1]``.
    per_class : int, optional
        A positive number of rows per class.

    Returns
    -------
    (np.ndarray, np.ndarray)
        The kept rows' positions in the pool (ascending) and their pseudo-labels.

    Raises
    ------
    ValueError
        For logits of the wrong shape, a threshold outside ``(0, 1]``, a non-positive
        ``per_class``, or neither rule given.

    Example
    -------
    >>> rows, labels = select_pseudo_labels(tt.predict(teacher, X_pool), per_class=300)
    """
    if threshold is None and per_class is None:
        raise ValueError("Give threshold, per_class or both.")
    if threshold is not None and not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold!r}.")
    if per_class is not None and (
        isinstance(per_class, bool) or int(per_class) != per_class or per_class < 1
    ):
        raise ValueError(f"per_class must be a positive integer, got {per_class!r}.")
    probs = softmax(logits)
    confidence, labels = probs.max(axis=1), probs.argmax(axis=1)
    keep = np.ones(len(labels), dtype=bool)
    if threshold is not None:
        keep &= confidence >= float(threshold)
    if per_class is not None:
        capped = np.zeros_like(keep)
        for c in np.unique(labels[keep]):
            rows = np.flatnonzero(keep & (labels == c))
            best = np.argsort(-confidence[rows], kind="stable")[: int(per_class)]
            capped[rows[best]] = True
        keep = capped
    rows = np.flatnonzero(keep)
    return rows, labels[rows]


def class_counts(labels, num_classes: int) -> np.ndarray:
    """How many pseudo-labels fell in each class, shape ``(num_classes,)``.

    Taught in :ref:`ch-semi-supervised`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}."
        )
    return np.bincount(labels, minlength=num_classes)
