"""Pseudo-labels and self-training: the selection rules, no pool label read, clear errors."""

import numpy as np
import pytest

import tlcourse.keras as tk
import tlcourse.torch as tt
from tlcourse.experiments import run_self_training, self_train
from tlcourse.pseudo_labels import class_counts, select_pseudo_labels, softmax

BACKENDS = [pytest.param(tt, id="torch"), pytest.param(tk, id="keras")]


def _logits(seed=0, n=200, classes=4):
    return np.random.default_rng(seed).normal(0.0, 2.0, size=(n, classes))


def test_threshold_keeps_exactly_the_confident_rows():
    logits = _logits()
    probs = softmax(logits)
    rows, labels = select_pseudo_labels(logits, threshold=0.8)
    expected = np.flatnonzero(probs.max(1) >= 0.8)
    assert 0 < len(expected) < len(logits)
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_array_equal(labels, probs.argmax(1)[expected])


def test_per_class_keeps_the_most_confident_of_each_predicted_class():
    logits = _logits(1)
    probs = softmax(logits)
    rows, labels = select_pseudo_labels(logits, per_class=10)
    assert class_counts(labels, 4).tolist() == [10, 10, 10, 10]
    for c in range(4):
        of_c = np.flatnonzero(probs.argmax(1) == c)
        top = of_c[np.argsort(-probs[of_c, c])[:10]]
        np.testing.assert_array_equal(np.sort(top), rows[labels == c])
    # Both rules: the cap applies among the rows above the threshold.
    rows2, labels2 = select_pseudo_labels(logits, threshold=0.9, per_class=10)
    assert set(rows2) <= set(rows) and (probs[rows2].max(1) >= 0.9).all()
    assert class_counts(labels2, 4).max() <= 10


@pytest.mark.parametrize(
    "kwargs, match",
    [({}, "threshold, per_class"), ({"threshold": 0.0}, r"\(0, 1\]"),
     ({"threshold": 1.5}, r"\(0, 1\]"), ({"per_class": 0}, "positive integer"),
     ({"per_class": 2.5}, "positive integer")],
)  # fmt: skip
def test_bad_selection_rules_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_pseudo_labels(_logits(), **kwargs)


def test_bad_logits_and_labels_are_refused():
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        softmax(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        select_pseudo_labels(np.zeros(5), threshold=0.5)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        class_counts([0, 3], 3)


def _run(backend, X, y, seeds=(0,)):
    backend.set_seed(0)
    source = backend.build_digit_net(width=4)
    recipe = dict(num_epochs=2, batch_size=8, lr=3e-3)
    return run_self_training(
        backend, source, X, y, k_per_class=3, seeds=list(seeds), test_per_class=5,
        quiet=True, rounds=2, per_class=6, student_steps=4, batch_size=16,
        teacher_recipe=recipe,
    )  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
def test_pool_labels_are_never_read_and_runs_repeat(backend, tiny_digits, monkeypatch):
    import tlcourse.experiments.self_training as module
    from tlcourse.data import make_few_shot_split

    (X, y), _ = tiny_digits
    split = make_few_shot_split(y, 3, seed=0, test_per_class=5)
    # The split is drawn per class from y: hold it fixed, so that scrambling the pool's
    # labels can change the run only if training reads them.
    monkeypatch.setattr(module, "make_few_shot_split", lambda *args, **kwargs: split)
    first = _run(backend, X, y)
    y_scrambled = y.copy()
    y_scrambled[split.unlabelled] = np.random.default_rng(5).permutation(y[split.unlabelled])
    assert (y_scrambled != y).any()
    second = _run(backend, X, y_scrambled)
    again = _run(backend, X, y)
    for key in ("teacher", "student", "pseudo_count", "class_counts"):
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
        np.testing.assert_array_equal(first[key], again[key], err_msg=key)
    assert first["student"].shape == (1, 2) and first["class_counts"].shape == (1, 2, 10)
    assert (first["pseudo_count"] == first["class_counts"].sum(-1)).all()
    assert (first["class_counts"] <= 6).all()
    # Only the report, which compares the pseudo-labels with the pool's labels, moves.
    assert not np.array_equal(first["pseudo_accuracy"], second["pseudo_accuracy"])


def test_an_empty_pool_and_bad_counts_are_refused(tiny_digits):
    (X, y), _ = tiny_digits
    source = tt.build_digit_net(width=4)
    kwargs = dict(seed=0, teacher_recipe=dict(num_epochs=1, batch_size=8, lr=1e-3),
                  student_steps=2, per_class=3)  # fmt: skip
    with pytest.raises(ValueError, match="pool is empty"):
        self_train(tt, tt.clone_model(source), source, X[:20], y[:20], X[:0], rounds=1, **kwargs)
    with pytest.raises(ValueError, match="rounds"):
        self_train(tt, tt.clone_model(source), source, X[:20], y[:20], X[20:40], rounds=0, **kwargs)
    with pytest.raises(ValueError, match="seeds"):
        run_self_training(tt, source, X, y, k_per_class=3, seeds=[], rounds=1)
