"""The Fréchet distance between two sets of feature vectors (NumPy/SciPy only).

Fitting a Gaussian to each set, the distance is

.. math:: d^2 = \\lVert \\mu_a - \\mu_b \\rVert^2
          + \\operatorname{Tr}\\left(\\Sigma_a + \\Sigma_b - 2 (\\Sigma_a \\Sigma_b)^{1/2}\\right).

With Inception-v3 features of photographs this is the FID of Heusel et al. (2017); the
course computes it on features of its own digit classifier ("digit FID"), which needs no
download. Values from different feature extractors are not comparable.
"""

from __future__ import annotations

import numpy as np


def gaussian_frechet_distance(mu_a, cov_a, mu_b, cov_b) -> float:
    """Squared Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b).

    Parameters
    ----------
    mu_a, mu_b : array-like
        Means, shape ``(D,)``.
    cov_a, cov_b : array-like
        Covariance matrices, shape ``(D, D)``, symmetric positive semi-definite.

    Returns
    -------
    float
        Non-negative; 0 for identical Gaussians.

    Raises
    ------
    ValueError
        For shapes that do not match.
    """
    mu_a, mu_b = np.atleast_1d(np.asarray(mu_a, float)), np.atleast_1d(np.asarray(mu_b, float))
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, float)), np.atleast_2d(np.asarray(cov_b, float))
    d = mu_a.shape[0]
    if mu_a.shape != (d,) or mu_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise ValueError(
            f"Shapes do not match: means {mu_a.shape}, {mu_b.shape}; "
            f"covariances {cov_a.shape}, {cov_b.shape}."
        )
    # Tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric
    # positive semi-definite matrix: stable, real, and fine for singular covariances.
    w, V = np.linalg.eigh((cov_a + cov_a.T) / 2)
    root_a = (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T
    inner = np.linalg.eigvalsh(root_a @ ((cov_b + cov_b.T) / 2) @ root_a)
    trace_covmean = np.sqrt(np.clip(inner, 0.0, None)).sum()
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_covmean
    return float(max(value, 0.0))


def frechet_distance(features_a, features_b) -> float:
    """Squared Fréchet distance between two sets of feature vectors.

    Parameters
    ----------
    features_a, features_b : array-like
        Shapes ``(N_a, D)`` and ``(N_b, D)``, each with at least two rows. The estimate is
        biased upwards for small sets; compare values computed on sets of the same size.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For inputs that are not 2-D, have different feature sizes, fewer than two rows, or
        non-finite values.

    Example
    -------
    >>> F_real = extract_features(classifier, X_real)
    >>> F_fake = extract_features(classifier, X_generated)
    >>> frechet_distance(F_real, F_fake)
    """
    stats = []
    for name, F in (("features_a", features_a), ("features_b", features_b)):
        F = np.asarray(F, dtype=float)
        if F.ndim != 2 or F.shape[0] < 2:
            raise ValueError(f"{name} must have shape (N, D) with N >= 2, got {F.shape}.")
        if not np.isfinite(F).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
        stats.append((F.mean(axis=0), np.cov(F, rowvar=False), F.shape[1]))
    (mu_a, cov_a, d_a), (mu_b, cov_b, d_b) = stats
    if d_a != d_b:
        raise ValueError(f"Feature sizes differ: {d_a} and {d_b}.")
    return gaussian_frechet_distance(mu_a, cov_a, mu_b, cov_b)
