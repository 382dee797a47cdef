"""Style-transfer augmentation without a network: Fourier domain adaptation (NumPy only).

Yang & Soatto (2020) observed that much of what separates two image domains (contrast,
blur, stroke thickness, texture) lives in the *low-frequency amplitude* of the Fourier
spectrum, while what the image shows lives mostly in the *phase*. Swapping the
low-frequency amplitude of a source image for that of a target image re-styles the source
image towards the target domain and keeps its content, hence its label. No target label is
needed: only unlabelled target images.
"""

from __future__ import annotations

import numpy as np

from tlcourse.checks import check_seed


def _check_images(name: str, X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty array of images (N, H, W), got {X.shape}.")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    return X


def low_frequency_mask(shape: tuple[int, int], beta: float) -> np.ndarray:
    """Boolean mask of the centred square of low frequencies that FDA swaps.

    Parameters
    ----------
    shape : (int, int)
        Image height and width.
    beta : float
        Half-width of the square as a fraction of the smaller side, in ``[0, 0.5]``;
        ``b = floor(beta * min(H, W))`` frequencies on each side of zero are swapped
        (``2b + 1`` per axis when ``b > 0``, nothing when ``b == 0``).

    Returns
    -------
    np.ndarray
        Boolean ``(H, W)`` mask in *unshifted* FFT layout (zero frequency at ``[0, 0]``).
    """
    if not 0.0 <= beta <= 0.5:
        raise ValueError(f"beta must lie in [0, 0.5], got {beta!r}.")
    h, w = shape
    b = int(np.floor(beta * min(h, w)))
    mask = np.zeros((h, w), bool)
    if b > 0:
        ch, cw = h // 2, w // 2
        mask[ch - b : ch + b + 1, cw - b : cw + b + 1] = True
    return np.fft.ifftshift(mask)


def fourier_style_transfer(X_content, X_style, *, beta: float = 0.1, seed: int = 0) -> np.ndarray:
    """Re-style each content image with the low-frequency amplitude of a random style image.

    For every image of ``X_content``, one image of ``X_style`` is drawn at random (with
    ``seed``); the content image keeps its phase and its high-frequency amplitude, and takes
    the style image's amplitude inside :func:`low_frequency_mask`. The result is clipped to
    ``[0, 1]``. This is FDA (Yang & Soatto, 2020) with the amplitude swapped outright.

    Parameters
    ----------
    X_content : array-like
        Images ``(N, H, W)`` in ``[0, 1]``, e.g. labelled source images.
    X_style : array-like
        Images ``(M, H, W)`` of the same size, e.g. unlabelled target images.
    beta : float, default 0.1
        Size of the swapped band (see :func:`low_frequency_mask`); 0 changes nothing.
    seed : int, default 0
        Chooses the style image for each content image.

    Returns
    -------
    np.ndarray
        float32 images ``(N, H, W)`` in ``[0, 1]``.

    Raises
    ------
    ValueError
        For arrays that are not non-empty stacks of images, sizes that differ, non-finite
        values, or ``beta`` outside ``[0, 0.5]``.

    Example
    -------
    >>> X_styled = fourier_style_transfer(X_source, X_target_unlabelled, beta=0.1)
    """
    X_content = _check_images("X_content", X_content)
    X_style = _check_images("X_style", X_style)
    if X_content.shape[1:] != X_style.shape[1:]:
        raise ValueError(
            f"Image sizes differ: content {X_content.shape[1:]}, style {X_style.shape[1:]}."
        )
    mask = low_frequency_mask(X_content.shape[1:], beta)
    if not mask.any():
        return X_content.copy()
    rng = np.random.default_rng(check_seed(seed))
    pick = rng.integers(0, len(X_style), size=len(X_content))
    F_content = np.fft.fft2(X_content)
    amplitude = np.abs(F_content)
    phase = np.angle(F_content)
    amplitude[:, mask] = np.abs(np.fft.fft2(X_style[pick]))[:, mask]
    styled = np.real(np.fft.ifft2(amplitude * np.exp(1j * phase)))
    return np.clip(styled, 0.0, 1.0).astype(np.float32)
