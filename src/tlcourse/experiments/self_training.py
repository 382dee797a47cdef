"""Self-training on the unlabelled target pool, for several seeds, in either framework.

Taught in :ref:`ch-semi-supervised`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import ModuleType

import numpy as np
from tqdm import tqdm

from tlcourse.checks import check_positive_ints
from tlcourse.data import TEST_PER_CLASS, make_few_shot_split
from tlcourse.finetune import Strategy, fine_tune
from tlcourse.pseudo_labels import class_counts, select_pseudo_labels


def self_train(
    backend: ModuleType,
    model,
    source,
    X_lab: np.ndarray,
    y_lab: np.ndarray,
    X_pool: np.ndarray,
    *,
    rounds: int,
    seed: int,
    teacher_recipe: Mapping[str, float],
    student_steps: int,
    batch_size: int = 64,
    lr: float = 1e-2,
    threshold: float | None = None,
    per_class: int | None = None,
    from_scratch: bool = False,
    on_round: Callable[[int, object], None] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Fine-tune a teacher on the labelled images, then retrain it on its own pseudo-labels.

    Taught in :ref:`ch-semi-supervised`.

    Round 0 trains the teacher: ``source`` fine-tuned (or, with ``from_scratch``, the same
    network re-initialised) on ``(X_lab, y_lab)`` with ``teacher_recipe``. Each round then
    pseudo-labels ``X_pool`` with the current model
    (:func:`tlcourse.pseudo_labels.select_pseudo_labels`) and trains a *student* from the
    same start on the labelled images plus the pseudo-labelled ones, for about
    ``student_steps`` steps of ``batch_size``; the student is the next round's teacher.
    The labelled images are repeated so that they make up about a sixth of the student's
    data. No label of the pool is an argument: it cannot be used.

    Parameters
    ----------
    backend : module
        :mod:`tlcourse.torch` or :mod:`tlcourse.keras`.
    model
        A model of ``source``'s architecture, trained in place (reset first).
    source
        The pretrained source model.
    X_lab, y_lab : np.ndarray
        The labelled target images and their labels.
    X_pool : np.ndarray
        Unlabelled target images.
    rounds : int
        Pseudo-labelling rounds after the teacher (at least 1).
    seed : int
    teacher_recipe : mapping
        ``num_epochs``, ``batch_size``, ``lr`` of the teacher.
    student_steps, batch_size, lr
        The students' budget and recipe.
    threshold, per_class
        The selection rule (see ``select_pseudo_labels``).
    from_scratch : bool, default False
        Start teacher and students from fresh weights instead of ``source``'s.
    on_round : callable, optional
        ``on_round(r, model)`` after the teacher (``r = 0``) and after each round's student
        (``r = 1 .. rounds``), e.g. to score it.

    Returns
    -------
    list of dict
        One entry per round: ``"rows"`` (positions in ``X_pool``) and ``"labels"`` (their
        pseudo-labels), the selection that the round's student trained on.

    Raises
    ------
    ValueError
        For an empty pool, non-positive counts, or a selection rule that is invalid.
    """
    check_positive_ints(rounds=rounds, student_steps=student_steps, batch_size=batch_size)
    if len(X_pool) == 0:
        raise ValueError("The unlabelled pool is empty: self-training needs images to label.")
    strategy = Strategy(from_scratch=from_scratch)
    fine_tune(backend, model, source, X_lab, y_lab, strategy, seed=seed, **teacher_recipe)
    if on_round is not None:
        on_round(0, model)
    log = []
    for r in range(rounds):
        rows, labels = select_pseudo_labels(
            backend.predict(model, X_pool), threshold=threshold, per_class=per_class
        )
        repeat = max(1, len(rows) // (5 * len(X_lab)))
        X_train = np.concatenate([np.tile(X_lab, (repeat, 1, 1)), X_pool[rows]])
        y_train = np.concatenate([np.tile(y_lab, repeat), labels])
        epochs = max(1, int(np.ceil(student_steps * batch_size / len(X_train))))
        fine_tune(
            backend, model, source, X_train, y_train, strategy,
            seed=seed + 1000 * (r + 1), num_epochs=epochs, batch_size=batch_size, lr=lr,
        )  # fmt: skip
        log.append({"rows": rows, "labels": labels})
        if on_round is not None:
            on_round(r + 1, model)
    return log


def run_self_training(
    backend: ModuleType,
    source,
    X: np.ndarray,
    y: np.ndarray,
    *,
    k_per_class: int,
    seeds: Sequence[int],
    test_per_class: int = TEST_PER_CLASS,
    quiet: bool = False,
    **self_train_kwargs,
) -> dict:
    """:func:`self_train` for each seed on a few-shot split; score teacher and students.

    Taught in :ref:`ch-semi-supervised`.

    For every seed, :func:`tlcourse.data.make_few_shot_split` draws ``k_per_class``
    labelled images per class and the test set; everything else is the unlabelled pool,
    whose labels go only into the report (how many pseudo-labels were right), never into
    training.

    Returns
    -------
    dict
        ``"teacher"``: test accuracy of each seed's teacher, shape ``(len(seeds),)``;
        ``"student"``: of each round's student, ``(len(seeds), rounds)``;
        ``"pseudo_accuracy"``, ``"pseudo_count"``: per seed and round, the fraction of
        pseudo-labels that were right and how many there were; ``"class_counts"``:
        ``(len(seeds), rounds, classes)``, the pseudo-labels per class.
    """
    if not seeds:
        raise ValueError("seeds must be non-empty.")
    rounds = self_train_kwargs.get("rounds", 1)
    num_classes = int(np.max(y)) + 1
    out = {
        "teacher": np.zeros(len(seeds)),
        "student": np.zeros((len(seeds), rounds)),
        "pseudo_accuracy": np.zeros((len(seeds), rounds)),
        "pseudo_count": np.zeros((len(seeds), rounds), dtype=int),
        "class_counts": np.zeros((len(seeds), rounds, num_classes), dtype=int),
    }
    model = backend.clone_model(source)  # one object for every seed (Keras keeps its step)
    for i, seed in enumerate(tqdm(seeds, desc=f"{backend.__name__} self-training", disable=quiet)):
        split = make_few_shot_split(y, k_per_class, seed=int(seed), test_per_class=test_per_class)
        test = (X[split.test], y[split.test])
        scores = []

        def score(r, m, scores=scores, test=test):
            scores.append(backend.evaluate(m, *test))

        log = self_train(
            backend, model, source, X[split.train], y[split.train], X[split.unlabelled],
            seed=int(seed), on_round=score, **self_train_kwargs,
        )  # fmt: skip
        out["teacher"][i] = scores[0]["accuracy"]
        out["student"][i] = [score["accuracy"] for score in scores[1:]]
        y_pool = y[split.unlabelled]  # for the report only
        for r, entry in enumerate(log):
            right = entry["labels"] == y_pool[entry["rows"]]
            out["pseudo_accuracy"][i, r] = right.mean() if len(right) else np.nan
            out["pseudo_count"][i, r] = len(right)
            out["class_counts"][i, r] = class_counts(entry["labels"], num_classes)
    return out
