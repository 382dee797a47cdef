"""Classical data augmentation for digit images, in NumPy (random affine copies).

The same arrays feed both frameworks, so the two halves of a chapter train on identical
augmented images. Taught in the fine-tuning chapter; used by the GAN chapter's controls.
"""

from __future__ import annotations

import numpy as np

from tlcourse.checks import check_seed
from tlcourse.data import IMAGE_SIZE


def augment_digits(
    X: np.ndarray,
    copies: int,
    seed: int = 0,
    *,
    max_rotation: float = 12.0,
    max_shear: float = 0.15,
    scale: tuple[float, float] = (0.9, 1.1),
    max_shift: float = 2.0,
) -> np.ndarray:
    """Random affine copies of digit images (classical data augmentation), in NumPy.

    Each copy of each image gets its own rotation, shear, scale and shift about the image
    centre, with bilinear interpolation. The same arrays feed both frameworks, so the two
    halves of a chapter train on identical augmented images.

    Parameters
    ----------
    X : np.ndarray
        Images ``(N, 28, 28)`` in ``[0, 1]``.
    copies : int
        Augmented copies per image (the originals are not included).
    seed : int, default 0
    max_rotation : float, default 12
        Degrees, drawn uniformly from ``[-max_rotation, max_rotation]``.
    max_shear : float, default 0.15
    scale : (float, float), default (0.9, 1.1)
    max_shift : float, default 2
        Pixels, per axis.

    Returns
    -------
    np.ndarray
        float32 ``(copies * N, 28, 28)``: copy ``c`` of image ``i`` is row ``c * N + i``, so
        labels repeat as ``np.tile(y, copies)``.

    Example
    -------
    >>> X_aug = augment_digits(X[split.train], copies=10, seed=0)
    >>> y_aug = np.tile(y[split.train], 10)
    """
    from scipy import ndimage

    X = np.asarray(X, np.float32)
    if X.ndim != 3 or X.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"Expected images of shape (N, 28, 28), got {X.shape}.")
    if isinstance(copies, bool) or not isinstance(copies, int | np.integer) or copies < 1:
        raise ValueError(f"copies must be a positive integer, got {copies!r}.")
    if not 0 < scale[0] <= scale[1]:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}.")
    rng = np.random.default_rng(check_seed(seed))
    centre = np.full(2, (IMAGE_SIZE - 1) / 2)
    out = np.empty((copies * len(X), IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for row in range(len(out)):
        angle = np.deg2rad(rng.uniform(-max_rotation, max_rotation))
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        shear = np.array([[1.0, rng.uniform(-max_shear, max_shear)], [0.0, 1.0]])
        matrix = rotation @ shear / rng.uniform(*scale)  # output -> input coordinates
        offset = centre - matrix @ centre - rng.uniform(-max_shift, max_shift, 2)
        out[row] = ndimage.affine_transform(X[row % len(X)], matrix, offset, order=1)
    return np.clip(out, 0.0, 1.0, out=out)
