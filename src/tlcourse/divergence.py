"""How far apart are two domains? Measures that need only NumPy and scikit-learn."""

from __future__ import annotations

import numpy as np


def proxy_a_distance(
    source: np.ndarray,
    target: np.ndarray,
    *,
    seed: int = 0,
    max_per_domain: int = 2000,
    C: float = 1.0,
) -> float:
    """Estimate the proxy A-distance between two samples (Ben-David et al., 2007).

    A linear domain classifier learns to tell source from target on one half of a balanced
    sample and is scored on the other half. With held-out error ``err``, the proxy
    A-distance is ``2 * (1 - 2 * err)``: about 0 when the domains cannot be told apart and
    2 when they are perfectly separable. (It can dip slightly below 0 by chance.)

    Parameters
    ----------
    source, target : np.ndarray
        Samples of shape ``(N, ...)``; each row is flattened into a feature vector.
        Pass images for a pixel-level distance or features for a representation-level one.
    seed : int, default 0
        Seeds the subsampling and the train/test split.
    max_per_domain : int, default 2000
        At most this many rows of each domain are used (both domains get the same number).
    C : float, default 1.0
        Inverse regularisation strength of the logistic-regression domain classifier.

    Returns
    -------
    float
        The proxy A-distance.

    Raises
    ------
    ValueError
        If either sample has fewer than 10 rows or the feature sizes differ.

    Example
    -------
    >>> proxy_a_distance(X_synthetic, X_mnist)
    1.9...
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    source = np.asarray(source, np.float64).reshape(len(source), -1)
    target = np.asarray(target, np.float64).reshape(len(target), -1)
    if source.shape[1] != target.shape[1]:
        raise ValueError(
            f"Source and target have {source.shape[1]} and {target.shape[1]} features; "
            "they must match."
        )
    n = min(len(source), len(target), max_per_domain)
    if n < 10:
        raise ValueError(f"Need at least 10 rows per domain, got {len(source)} and {len(target)}.")
    rng = np.random.default_rng(seed)
    Z = np.concatenate(
        [
            source[rng.choice(len(source), n, replace=False)],
            target[rng.choice(len(target), n, replace=False)],
        ]
    )
    d = np.repeat([0, 1], n)
    Z_train, Z_test, d_train, d_test = train_test_split(
        Z, d, test_size=0.5, stratify=d, random_state=seed
    )
    scaler = StandardScaler().fit(Z_train)
    clf = LogisticRegression(C=C, max_iter=2000)
    clf.fit(scaler.transform(Z_train), d_train)
    err = 1.0 - clf.score(scaler.transform(Z_test), d_test)
    return float(2.0 * (1.0 - 2.0 * err))
