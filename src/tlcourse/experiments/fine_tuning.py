"""Fine-tuning strategies and the transferability experiment (chapter :ref:`ch-fine-tuning`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType

import numpy as np
from tqdm import tqdm

from tlcourse.augment import augment_digits
from tlcourse.data import TEST_PER_CLASS, Dataset, make_few_shot_split
from tlcourse.selection import select_on_validation, stratified_folds


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
    test_per_class: int = TEST_PER_CLASS,
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
        Random affine copies per labelled image (:func:`tlcourse.augment.augment_digits`).
    test_per_class : int, default ``tlcourse.data.TEST_PER_CLASS`` (200)
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


def run_lr_selection(
    backend: ModuleType,
    source,
    strategy,
    X: np.ndarray,
    y: np.ndarray,
    *,
    k_per_class: int,
    seeds: Sequence[int],
    lrs: Sequence[float],
    n_folds: int = 2,
    test_per_class: int = TEST_PER_CLASS,
    quiet: bool = False,
    **recipe,
) -> dict[str, np.ndarray]:
    """Choose the learning rate of one fine-tuning strategy on validation data, per seed.

    Taught in :ref:`ch-fine-tuning`.

    For every seed: draw ``k_per_class`` labelled examples per class (the whole label
    budget), split them into ``n_folds`` stratified folds, and fine-tune on all folds but
    one with each rate in ``lrs``, scoring on the held-out fold
    (:func:`tlcourse.selection.select_on_validation`). The rate with the best mean
    validation accuracy is chosen; the strategy is then fine-tuned at that rate on every
    labelled example and scored on the test set, which plays no part in the choice.

    Parameters
    ----------
    backend : module
        :mod:`tlcourse.torch` or :mod:`tlcourse.keras`.
    source
        The pretrained model (not modified).
    strategy : Strategy
    X, y : np.ndarray
        The labelled target pool.
    k_per_class : int
    seeds : sequence of int
    lrs : sequence of float
        Candidate learning rates; on a tie the earlier one is kept.
    n_folds : int, default 2
    test_per_class : int, default ``tlcourse.data.TEST_PER_CLASS`` (200)
    quiet : bool, default False
    **recipe
        ``num_epochs`` and ``batch_size`` for :func:`tlcourse.finetune.fine_tune`.

    Returns
    -------
    dict
        ``"val"``: mean validation accuracy of every rate, shape ``(len(seeds), len(lrs))``;
        ``"chosen"``: the index into ``lrs`` chosen for each seed; ``"test"``: the test
        accuracy at the chosen rate, shape ``(len(seeds),)``.

    Raises
    ------
    ValueError
        For no seeds or rates, or an ``lr`` in ``recipe`` or in the strategy (the rate is
        what is chosen).
    """
    from tlcourse.finetune import fine_tune

    if not seeds or not lrs:
        raise ValueError("seeds and lrs must be non-empty.")
    if "lr" in recipe or getattr(strategy, "lr", None) is not None:
        raise ValueError("lr is what run_lr_selection chooses; pass the candidates as lrs.")
    lrs = [float(lr) for lr in lrs]
    val = np.zeros((len(seeds), len(lrs)))
    chosen = np.zeros(len(seeds), dtype=int)
    test = np.zeros(len(seeds))
    model = backend.clone_model(source)  # one object for every run (Keras keeps its step)
    bar = tqdm(
        total=len(seeds) * (len(lrs) * n_folds + 1), desc=f"{backend.__name__} lr", disable=quiet
    )

    def train(X_train, y_train, lr, seed):
        bar.update()
        return fine_tune(
            backend, model, source, X_train, y_train, strategy, seed=seed, lr=lr, **recipe
        )

    for i, seed in enumerate(int(s) for s in seeds):
        split = make_few_shot_split(y, k_per_class, seed=seed, test_per_class=test_per_class)
        X_lab, y_lab = X[split.train], y[split.train]

        def score(lr, tr, va, seed=seed, X_lab=X_lab, y_lab=y_lab):
            trained = train(X_lab[tr], y_lab[tr], lr, seed)
            return backend.evaluate(trained, X_lab[va], y_lab[va])["accuracy"]

        selection = select_on_validation(lrs, score, stratified_folds(y_lab, n_folds, seed))
        val[i] = list(selection.scores.values())
        chosen[i] = lrs.index(selection.best)
        trained = train(X_lab, y_lab, selection.best, seed)
        test[i] = backend.evaluate(trained, X[split.test], y[split.test])["accuracy"]
    bar.close()
    return {"val": val, "chosen": chosen, "test": test}


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
    test_per_class: int = TEST_PER_CLASS,
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
        ``TRANSFER_VARIANTS`` (``BnB``, ``BnB+``, ``AnB``, ``AnB+``).
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
