"""Unsupervised domain adaptation: the parts that need only NumPy.

The framework halves (``tlcourse.torch.adaptation``, ``tlcourse.keras.adaptation``)
train a network on labelled source images and *unlabelled* target images with one of the
:data:`METHODS`. This module holds what they share: the method names and default loss
weights, DANN's schedule for the reversal strength, and closed-form CORAL on fixed
features. The experiment loop, :func:`tlcourse.experiments.run_adaptation`, is one level up.
"""

from __future__ import annotations

import numpy as np

from tlcourse.checks import check_images_and_labels, check_non_negative, check_positive_ints

#: What each method adds to the cross-entropy on labelled source images.
METHODS = ("source_only", "coral", "mmd", "dann", "self_training")
#: Default weight of the added loss, chosen on the synthetic -> MNIST task in the domain
#: adaptation chapter. Deep CORAL's loss is divided by 4 d^2 (d = 64 features), so it needs
#: a large weight to matter.
DEFAULT_WEIGHTS = {"coral": 30.0, "mmd": 1.0, "dann": 1.0, "self_training": 1.0}
# The per-step log that ``adapt`` keeps besides ``loss`` and ``align``, by method.
EXTRA_LOGS = {"dann": "domain_accuracy", "self_training": "pseudo_fraction"}


def check_method(method: str) -> str:
    """Return ``method`` if it is one of :data:`METHODS`, else raise ValueError."""
    if method not in METHODS:
        raise ValueError(f"Unknown adaptation method {method!r}; valid: {METHODS}.")
    return method


def check_adapt_inputs(
    X_source,
    y_source,
    X_target,
    *,
    num_classes: int | None,
    method: str,
    num_steps: int,
    batch_size: int,
    threshold: float,
    weight: float | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Validate the arguments of either framework's ``adapt``.

    Returns the source images and labels and the target images as float32 / int64 arrays,
    and the weight of the added loss (``DEFAULT_WEIGHTS[method]`` when ``weight`` is None).
    Raises ValueError for an unknown method, bad images or labels, source and target images
    of different shapes, non-positive step or batch counts, a threshold outside [0, 1] or a
    negative weight.
    """
    check_method(method)
    X_source, y_source = check_images_and_labels(X_source, y_source, num_classes=num_classes)
    X_target, _ = check_images_and_labels(X_target)
    if X_source.shape[1:] != X_target.shape[1:]:
        raise ValueError(
            f"Source images {X_source.shape[1:]} and target images {X_target.shape[1:]} "
            "must have the same shape."
        )
    check_positive_ints(num_steps=num_steps, batch_size=batch_size)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold!r}.")
    weight = check_non_negative(
        "weight", DEFAULT_WEIGHTS.get(method, 0.0) if weight is None else weight
    )
    return X_source, y_source, X_target, weight


def batch_indices(rng: np.random.Generator, n: int, batch_size: int):
    """Endless batches of indices into ``n`` items: a fresh permutation each pass.

    Batches never wrap around the end of a pass, so every batch has
    ``min(batch_size, n)`` distinct indices.
    """
    size = min(batch_size, n)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - size + 1, size):
            yield order[start : start + size]


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN's schedule for the reversal strength: ``2 / (1 + exp(-gamma * p)) - 1``.

    It rises from 0 at the start of training (``p = 0``) to almost 1 at the end (``p = 1``),
    so that the domain classifier's noisy early gradients do not wreck the features
    (Ganin et al., 2016, section 5.2.2).

    Parameters
    ----------
    progress : float
        Fraction of training done, in ``[0, 1]``.
    gamma : float, default 10.0

    Returns
    -------
    float
    """
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must lie in [0, 1], got {progress!r}.")
    return float(2.0 / (1.0 + np.exp(-check_non_negative("gamma", gamma) * progress)) - 1.0)


def _sym_power(cov: np.ndarray, power: float) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    return (vectors * values**power) @ vectors.T


def coral_transform(source: np.ndarray, target: np.ndarray, *, eps: float = 1.0) -> np.ndarray:
    """Closed-form CORAL (Sun, Feng & Saenko, 2016): give source features the target's
    mean and covariance.

    The source features are centred, whitened with ``(C_s + eps I)^(-1/2)``, re-coloured
    with ``(C_t + eps I)^(1/2)`` and moved to the target mean. A classifier trained on the
    result is then applied to the *untouched* target features. The ``eps I`` term (the
    paper's choice, ``eps = 1``) keeps the matrices invertible.

    Parameters
    ----------
    source, target : np.ndarray
        Feature matrices ``(N_s, D)`` and ``(N_t, D)`` (e.g. from ``extract_features``).
    eps : float, default 1.0
        Ridge added to both covariances; must be positive.

    Returns
    -------
    np.ndarray
        The transformed source features, ``(N_s, D)``.

    Raises
    ------
    ValueError
        If the inputs are not 2-D, their feature sizes differ, either has fewer than 2 rows,
        or ``eps`` is not positive.
    """
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(
            "coral_transform needs 2-D features with equal widths, got "
            f"{source.shape} and {target.shape}."
        )
    if len(source) < 2 or len(target) < 2:
        raise ValueError("coral_transform needs at least 2 rows in each domain.")
    if not check_non_negative("eps", eps) > 0:
        raise ValueError("eps must be positive.")
    ridge = eps * np.eye(source.shape[1])
    whiten = _sym_power(np.cov(source, rowvar=False) + ridge, -0.5)
    colour = _sym_power(np.cov(target, rowvar=False) + ridge, 0.5)
    return (source - source.mean(0)) @ whiten @ colour + target.mean(0)
