"""Input checks shared by the PyTorch and Keras halves (NumPy only)."""

from __future__ import annotations

import numpy as np


def check_images_and_labels(
    X, y=None, *, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate a batch of images (or feature vectors) and labels; return float32 and int64.

    Parameters
    ----------
    X : array-like
        Images, ``(N, H, W)`` or ``(N, ...)`` with 4 axes in the framework's own layout, or
        feature vectors ``(N, D)`` (e.g. cached features for a classifier head).
    y : array-like, optional
        Integer labels of shape ``(N,)``.
    num_classes : int, optional
        If given, every label must lie in ``[0, num_classes)``.

    Returns
    -------
    X : np.ndarray
        float32 array.
    y : np.ndarray or None
        int64 array, or None when no labels were given.

    Raises
    ------
    ValueError
        Wrong number of axes, an empty batch, NaNs, a label count that differs from the image
        count, non-integer labels or labels outside the model's classes.
    """
    X = np.asarray(X)
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            "Expected feature vectors (N, D), images (N, H, W) or images with 4 axes, "
            f"got shape {X.shape}."
        )
    if X.shape[0] == 0:
        raise ValueError("Got an empty batch of images.")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        raise ValueError("Images contain NaN or infinite values.")
    if y is None:
        return X, None
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"Expected labels of shape ({len(X)},), got shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"Labels must be integers, got dtype {y.dtype}.")
    if num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"Labels must lie in [0, {num_classes}) for this model, "
            f"got values from {y.min()} to {y.max()}."
        )
    return X, y.astype(np.int64)


def check_positive_ints(**values: object) -> None:
    """Raise ValueError naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def check_non_negative(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise ValueError if it is not a number >= 0."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}.") from None
    if not number >= 0.0:  # also rejects NaN
        raise ValueError(f"{name} must be a non-negative number, got {value!r}.")
    return number


def check_seed(seed: object) -> int:
    """Return ``seed`` as an int, or raise ValueError if it is not an integer >= 0."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)
