"""Experiment loops that run unchanged on either framework.

A *backend* is :mod:`tlcourse.torch` or :mod:`tlcourse.keras`: both expose ``set_seed``,
``build_digit_net``, ``fit`` and ``evaluate`` with the same signatures, so one loop serves
both halves of a chapter and the two columns of a side-by-side table come from the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import ModuleType

import numpy as np
from tqdm import tqdm

from tlcourse.data import make_few_shot_split

Dataset = tuple[np.ndarray, np.ndarray]

# Recipes for training the digit net from scratch on k labelled MNIST digits per class
# (None: all 400), tuned in the feature extraction chapter: small sets use small batches so
# that every run takes enough gradient steps.
SCRATCH_RECIPES: dict[int | None, dict[str, float]] = {
    1: {"num_epochs": 10, "batch_size": 4, "lr": 3e-3},
    5: {"num_epochs": 10, "batch_size": 8, "lr": 3e-3},
    10: {"num_epochs": 12, "batch_size": 16, "lr": 3e-3},
    50: {"num_epochs": 15, "batch_size": 32, "lr": 3e-3},
    None: {"num_epochs": 5, "batch_size": 128, "lr": 1e-2},
}
# The same for a linear probe on cached features (a much smaller model: more epochs or
# larger rates).
PROBE_RECIPES: dict[int | None, dict[str, float]] = {
    1: {"num_epochs": 30, "batch_size": 256, "lr": 1e-2},
    5: {"num_epochs": 10, "batch_size": 16, "lr": 2e-2},
    10: {"num_epochs": 10, "batch_size": 32, "lr": 2e-2},
    50: {"num_epochs": 8, "batch_size": 64, "lr": 2e-2},
    None: {"num_epochs": 6, "batch_size": 256, "lr": 2e-2},
}


def run_cross_domain(
    backend: ModuleType,
    train_domains: Mapping[str, Dataset],
    test_domains: Mapping[str, Dataset],
    seeds: Sequence[int],
    *,
    num_epochs: int | Mapping[str, int] = 3,
    batch_size: int = 128,
    lr: float = 3e-3,
    width: int = 16,
    quiet: bool = False,
) -> np.ndarray:
    """Train one digit net per (seed, training domain); score it on every test domain.

    Parameters
    ----------
    backend : module
        :mod:`tlcourse.torch` or :mod:`tlcourse.keras`.
    train_domains, test_domains : mapping of str to (X, y)
        Named data sets to train on and to test on.
    seeds : sequence of int
        One run per seed and training domain.
    num_epochs : int or mapping of str to int, default 3
        Epochs, for all training domains or per training domain.
    batch_size, lr, width
        Passed to ``build_digit_net`` (``width``) and ``fit``.
    quiet : bool, default False
        Hide the progress bar.

    Returns
    -------
    np.ndarray
        Accuracies of shape ``(len(seeds), len(train_domains), len(test_domains))``.

    Raises
    ------
    ValueError
        If ``seeds`` or a domain mapping is empty, or ``num_epochs`` lacks a domain.
    """
    if not seeds or not train_domains or not test_domains:
        raise ValueError("seeds, train_domains and test_domains must all be non-empty.")
    if isinstance(num_epochs, Mapping):
        missing = set(train_domains) - set(num_epochs)
        if missing:
            raise ValueError(f"num_epochs has no entry for training domains {sorted(missing)}.")
        epochs = dict(num_epochs)
    else:
        epochs = dict.fromkeys(train_domains, num_epochs)
    acc = np.zeros((len(seeds), len(train_domains), len(test_domains)))
    runs = [(s, t) for s in range(len(seeds)) for t in range(len(train_domains))]
    names = list(train_domains)
    for s, t in tqdm(runs, desc=f"{backend.__name__} runs", disable=quiet):
        name = names[t]
        backend.set_seed(int(seeds[s]))
        model = backend.build_digit_net(width=width)
        X, y = train_domains[name]
        backend.fit(
            model,
            X,
            y,
            num_epochs=epochs[name],
            batch_size=batch_size,
            lr=lr,
            seed=int(seeds[s]),
            quiet=True,
        )
        for j, (X_test, y_test) in enumerate(test_domains.values()):
            acc[s, t, j] = backend.evaluate(model, X_test, y_test)["accuracy"]
    return acc


def run_few_shot(
    backend: ModuleType,
    make_model: Callable[[], object],
    X: np.ndarray,
    y: np.ndarray,
    *,
    k_per_class: int | None,
    seeds: Sequence[int],
    test_per_class: int = 100,
    quiet: bool = False,
    desc: str | None = None,
    **fit_kwargs,
) -> np.ndarray:
    """Train a fresh model per seed on ``k_per_class`` labelled examples; return test accuracy.

    For each seed: draw the labelled examples with :func:`~tlcourse.data.make_few_shot_split`
    (the test set is the same for every seed), seed the framework, build a model with
    ``make_model()`` (for example a copy of a pretrained network, or a fresh one), train it
    with ``backend.fit(..., **fit_kwargs)`` and score it on the test set.

    Parameters
    ----------
    backend : module
        :mod:`tlcourse.torch` or :mod:`tlcourse.keras`.
    make_model : callable
        Returns the model to train; called after the framework is seeded.
    X, y : np.ndarray
        The whole labelled pool of the target domain.
    k_per_class : int or None
        Labelled examples per class (``None``: all non-test examples).
    seeds : sequence of int
    test_per_class : int, default 100
    quiet : bool, default False
        Hide the progress bar.
    desc : str, optional
        Label of the progress bar.
    **fit_kwargs
        Passed to ``backend.fit`` (``num_epochs``, ``lr``, ``batch_size``, ...).

    Returns
    -------
    np.ndarray
        Test accuracies, shape ``(len(seeds),)``.
    """
    if not seeds:
        raise ValueError("seeds must be non-empty.")
    acc = np.zeros(len(seeds))
    for i, seed in enumerate(tqdm(seeds, desc=desc or f"k={k_per_class}", disable=quiet)):
        split = make_few_shot_split(y, k_per_class, seed=int(seed), test_per_class=test_per_class)
        backend.set_seed(int(seed))
        model = make_model()
        backend.fit(model, X[split.train], y[split.train], seed=int(seed), quiet=True, **fit_kwargs)
        acc[i] = backend.evaluate(model, X[split.test], y[split.test])["accuracy"]
    return acc


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


def run_strategies(
    backend: ModuleType,
    source,
    strategies: Mapping[str, object],
    X: np.ndarray,
    y: np.ndarray,
    *,
    k_per_class: int | None,
    seeds: Sequence[int],
    extra_test_sets: Mapping[str, Dataset] | None = None,
    augment_copies: int = 0,
    test_per_class: int = 100,
    quiet: bool = False,
    **recipe,
) -> dict[str, np.ndarray]:
    """Fine-tune ``source`` on few labelled target examples with each strategy and seed.

    For every strategy, one copy of ``source`` is made and, for each seed, reset and
    trained by :func:`tlcourse.finetune.fine_tune` on ``k_per_class`` labelled examples per
    class (plus ``augment_copies`` random affine copies of each, if asked), then scored on
    the target test set (the same for every seed) and on ``extra_test_sets``.

    Parameters
    ----------
    backend : module
        :mod:`tlcourse.torch` or :mod:`tlcourse.keras`.
    source
        The pretrained model (not modified).
    strategies : mapping of str to Strategy
    X, y : np.ndarray
        The labelled target pool.
    k_per_class : int or None
    seeds : sequence of int
    extra_test_sets : mapping of str to (X, y), optional
        More test sets, e.g. the source domain's, to measure forgetting.
    augment_copies : int, default 0
        Random affine copies per labelled image (:func:`tlcourse.data.augment_digits`).
    test_per_class : int, default 100
    quiet : bool, default False
        Hide the progress bar.
    **recipe
        ``num_epochs``, ``batch_size`` and ``lr`` for ``fine_tune``.

    Returns
    -------
    dict of str to np.ndarray
        Per strategy, accuracies of shape ``(len(seeds), 1 + len(extra_test_sets))``:
        column 0 is the target test set, then the extra sets in order.
    """
    from tlcourse.data import augment_digits
    from tlcourse.finetune import fine_tune

    if not seeds or not strategies:
        raise ValueError("seeds and strategies must be non-empty.")
    extra = dict(extra_test_sets or {})
    results = {name: np.zeros((len(seeds), 1 + len(extra))) for name in strategies}
    runs = [(name, i) for name in strategies for i in range(len(seeds))]
    models = {}
    for name, i in tqdm(runs, desc=f"{backend.__name__} strategies", disable=quiet):
        seed = int(seeds[i])
        split = make_few_shot_split(y, k_per_class, seed=seed, test_per_class=test_per_class)
        X_train, y_train = X[split.train], y[split.train]
        if augment_copies:
            X_train = np.concatenate([X_train, augment_digits(X_train, augment_copies, seed)])
            y_train = np.tile(y_train, augment_copies + 1)
        if name not in models:
            models[name] = backend.clone_model(source)
        model = fine_tune(
            backend, models[name], source, X_train, y_train, strategies[name], seed=seed, **recipe
        )
        scores = [backend.evaluate(model, X[split.test], y[split.test])["accuracy"]]
        scores += [backend.evaluate(model, Xe, ye)["accuracy"] for Xe, ye in extra.values()]
        results[name][i] = scores
    return results


TRANSFER_VARIANTS = ("BnB", "BnB+", "AnB", "AnB+")


def run_transferability(
    backend: ModuleType,
    X: np.ndarray,
    y: np.ndarray,
    *,
    classes_a: Sequence[int],
    classes_b: Sequence[int],
    k_per_class_b: int,
    seeds: Sequence[int],
    base_recipe: Mapping[str, float],
    recipe: Mapping[str, float],
    width: int = 16,
    test_per_class: int = 100,
    quiet: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Yosinski et al. (2014), small: how transferable are the features of each block?

    Per seed: train ``baseA`` on every labelled example of ``classes_a`` and ``baseB`` on
    ``k_per_class_b`` per class of ``classes_b``. Then for every ``n`` (1 to the number of
    conv blocks) copy the first ``n`` blocks of baseB (``BnB``) or baseA (``AnB``) into a
    fresh network, keep them frozen or fine-tune them too (``+``), and train the rest on
    task B's examples with ``recipe``. Every network is scored on task B's test set.

    Returns
    -------
    base_b : np.ndarray
        baseB's accuracy, shape ``(len(seeds),)``.
    transfer : np.ndarray
        Shape ``(len(seeds), n_blocks, 4)``; the last axis follows
        :data:`TRANSFER_VARIANTS` (``BnB``, ``BnB+``, ``AnB``, ``AnB+``).
    """
    if set(classes_a) & set(classes_b):
        raise ValueError("classes_a and classes_b must not overlap.")
    if not seeds:
        raise ValueError("seeds must be non-empty.")

    def task(classes, k, seed):
        split = make_few_shot_split(
            y, k, seed=seed, test_per_class=test_per_class, classes=list(classes)
        )
        relabel = {int(c): i for i, c in enumerate(classes)}
        y_task = np.array([relabel.get(int(c), -1) for c in y])
        return (X[split.train], y_task[split.train]), (X[split.test], y_task[split.test])

    def train(model, data, seed, **fit_kwargs):
        backend.fit(model, *data, seed=seed, quiet=True, **fit_kwargs)
        return model

    blocks = backend.block_names(backend.build_digit_net(width=width))
    conv_blocks = blocks[:-1]
    base_b = np.zeros(len(seeds))
    transfer = np.zeros((len(seeds), len(conv_blocks), len(TRANSFER_VARIANTS)))
    bar = tqdm(total=len(seeds) * (2 + transfer[0].size), desc="transferability", disable=quiet)
    for i, seed in enumerate(int(s) for s in seeds):
        train_a, _ = task(classes_a, None, seed)
        train_b, test_b = task(classes_b, k_per_class_b, seed)
        backend.set_seed(seed)
        base = {"A": backend.build_digit_net(len(classes_a), width=width)}
        base["B"] = backend.build_digit_net(len(classes_b), width=width)
        train(base["A"], train_a, seed, **base_recipe)
        train(base["B"], train_b, seed, **recipe)
        base_b[i] = backend.evaluate(base["B"], *test_b)["accuracy"]
        bar.update(2)
        for n in range(1, len(conv_blocks) + 1):
            for j, variant in enumerate(TRANSFER_VARIANTS):
                backend.set_seed(seed + 1000 * n)
                model = backend.build_digit_net(len(classes_b), width=width)
                backend.load_matching(model, base[variant[0]], exclude=blocks[n:])
                if not variant.endswith("+"):
                    backend.freeze(model, until=blocks[n - 1])
                train(model, train_b, seed, **recipe)
                transfer[i, n - 1, j] = backend.evaluate(model, *test_b)["accuracy"]
                bar.update(1)
    bar.close()
    return base_b, transfer
