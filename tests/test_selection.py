import numpy as np
import pytest

from tlcourse.selection import Selection, select_on_validation, stratified_folds


def test_stratified_folds_validate_every_position_once_with_every_class_in_every_fold():
    y = np.repeat(np.arange(10), [10] * 9 + [7])  # the last class is smaller
    folds = stratified_folds(y, n_folds=3, seed=4)
    assert len(folds) == 3
    validated = np.concatenate([val for _, val in folds])
    assert sorted(validated.tolist()) == list(range(len(y)))  # each position exactly once
    for train, val in folds:
        assert not set(train) & set(val) and len(train) + len(val) == len(y)
        counts = np.bincount(y[val], minlength=10)
        assert counts.min() >= 2 and counts.max() <= 4  # 10 or 7 per class over 3 folds
        assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)  # sorted


def test_stratified_folds_depend_on_the_seed_alone():
    y = np.repeat(np.arange(4), 6)
    a, b = stratified_folds(y, 2, seed=1), stratified_folds(y, 2, seed=1)
    assert all(np.array_equal(x[1], z[1]) for x, z in zip(a, b, strict=True))
    other = stratified_folds(y, 2, seed=2)
    assert not all(np.array_equal(x[1], z[1]) for x, z in zip(a, other, strict=True))


@pytest.mark.parametrize(
    ("y", "n_folds", "message"),
    [
        (np.repeat(np.arange(3), 4), 1, "at least 2"),
        (np.repeat(np.arange(3), 4), True, "at least 2"),
        (np.array([0, 0, 1, 1, 1]), 3, "smallest class"),
        (np.zeros((2, 2), dtype=int), 2, "1-D integer"),
        (np.array([0.5, 1.5]), 2, "1-D integer"),
    ],
)
def test_stratified_folds_refuse_what_cannot_be_split(y, n_folds, message):
    with pytest.raises(ValueError, match=message):
        stratified_folds(y, n_folds)


def test_select_on_validation_keeps_the_best_mean_and_the_first_on_a_tie():
    folds = [(np.array([0]), np.array([1])), (np.array([1]), np.array([0]))]
    table = {"a": [0.5, 0.7], "b": [0.9, 0.5], "c": [0.6, 0.4]}  # means 0.6, 0.7, 0.5
    calls = []

    def score(candidate, train, val):
        calls.append((candidate, int(train[0]), int(val[0])))
        return table[candidate][int(val[0]) == 0]

    selection = select_on_validation(list(table), score, folds)
    assert selection == Selection(best="b", scores={"a": 0.6, "b": 0.7, "c": 0.5})
    assert calls == [(c, t, v) for c in table for t, v in ((0, 1), (1, 0))]
    tied = select_on_validation(["x", "y"], lambda c, t, v: 0.5, folds)
    assert tied.best == "x"


def test_select_on_validation_refuses_empty_input_and_bad_scores():
    folds = [(np.array([0]), np.array([1]))]
    with pytest.raises(ValueError, match="at least one candidate"):
        select_on_validation([], lambda c, t, v: 1.0, folds)
    with pytest.raises(ValueError, match="at least one candidate"):
        select_on_validation([1], lambda c, t, v: 1.0, [])
    with pytest.raises(ValueError, match="nan"):
        select_on_validation([1], lambda c, t, v: float("nan"), folds)


@pytest.mark.slow
def test_run_lr_selection_chooses_on_validation_and_never_reads_the_test_labels(tiny_digits):
    import tlcourse.torch as tt
    from tlcourse.data import make_few_shot_split
    from tlcourse.experiments import run_lr_selection
    from tlcourse.finetune import Strategy, fine_tune

    (X, y), _ = tiny_digits
    tt.set_seed(0)
    source = tt.build_digit_net(width=4)
    kwargs = dict(k_per_class=4, seeds=[0, 1], lrs=[1e-4, 3e-2], test_per_class=6, quiet=True)
    recipe = dict(num_epochs=3, batch_size=8)
    out = run_lr_selection(tt, source, Strategy(), X, y, **kwargs, **recipe)
    assert out["val"].shape == (2, 2) and out["test"].shape == (2,)
    assert np.array_equal(out["chosen"], out["val"].argmax(1))
    # Validation accuracies are means of two folds of 20 digits each: multiples of 1/40.
    np.testing.assert_allclose(out["val"] * 40, np.round(out["val"] * 40), atol=1e-9)
    # Seed 1's test score, repeated by hand at the chosen rate on all its labelled digits.
    split = make_few_shot_split(y, 4, seed=1, test_per_class=6)
    lr = kwargs["lrs"][out["chosen"][1]]
    model = fine_tune(
        tt, tt.clone_model(source), source, X[split.train], y[split.train], Strategy(),
        seed=1, lr=lr, **recipe,
    )  # fmt: skip
    expected = tt.evaluate(model, X[split.test], y[split.test])["accuracy"]
    assert out["test"][1] == pytest.approx(expected)
    # Replace every test image by noise (the test set is the same for both seeds; the
    # labels must stay, as they decide the split): the validation scores and the choices
    # do not move, so the test digits took no part in choosing.
    noisy = X.copy()
    noisy[split.test] = np.random.default_rng(0).random(X[split.test].shape, dtype=X.dtype)
    again = run_lr_selection(tt, source, Strategy(), noisy, y, **kwargs, **recipe)
    np.testing.assert_array_equal(again["val"], out["val"])
    np.testing.assert_array_equal(again["chosen"], out["chosen"])
    with pytest.raises(ValueError, match="lr is what"):
        run_lr_selection(tt, source, Strategy(), X, y, lr=1e-2, **kwargs, **recipe)
    with pytest.raises(ValueError, match="lr is what"):
        run_lr_selection(tt, source, Strategy(lr=1e-3), X, y, **kwargs, **recipe)


def test_mean_entropy_is_zero_for_certain_and_log_k_for_uniform_predictions():
    from tlcourse.selection import mean_entropy

    assert mean_entropy(np.array([[50.0, 0.0, 0.0]])) == pytest.approx(0.0, abs=1e-12)
    assert mean_entropy(np.zeros((4, 10))) == pytest.approx(np.log(10))
    # Independent of a shift per row, and the mean over rows.
    p = np.array([0.7, 0.2, 0.1])
    h = float(-(p * np.log(p)).sum())
    logits = np.stack([np.log(p) + 3.0, np.zeros(3)])
    assert mean_entropy(logits) == pytest.approx((h + np.log(3)) / 2)
    for bad in (np.zeros(3), np.zeros((0, 3)), np.array([[np.nan, 0.0]])):
        with pytest.raises(ValueError, match="2-D finite"):
            mean_entropy(bad)


def test_select_per_seed_follows_each_criterion_s_direction():
    from tlcourse.experiments import CRITERIA, select_per_seed

    def entry(src, ent, orc):
        return dict(zip(CRITERIA, (src, ent, orc), strict=True))

    scores = {
        ("a", 0): entry(0.9, 0.5, 0.6), ("b", 0): entry(0.8, 0.1, 0.7),
        ("a", 1): entry(0.7, 0.2, 0.9), ("b", 1): entry(0.7, 0.3, 0.8),
    }  # fmt: skip
    assert select_per_seed(scores, ["a", "b"], [0, 1], "source accuracy") == ["a", "a"]  # tie
    assert select_per_seed(scores, ["a", "b"], [0, 1], "target entropy") == ["b", "a"]  # lower
    assert select_per_seed(scores, ["a", "b"], [0, 1], "target accuracy (oracle)") == ["b", "a"]
    assert select_per_seed(scores, ["b"], [1], "source accuracy") == ["b"]
    with pytest.raises(ValueError, match="Unknown criterion"):
        select_per_seed(scores, ["a"], [0], "test accuracy")
    with pytest.raises(ValueError, match="No scores"):
        select_per_seed(scores, ["a", "c"], [0], "source accuracy")


def test_selection_scores_use_the_target_labels_only_for_the_oracle(tiny_digits):
    import tlcourse.torch as tt
    from tlcourse.experiments import selection_scores
    from tlcourse.selection import mean_entropy

    (X, y), (X_t, y_t) = tiny_digits
    tt.set_seed(0)
    model = tt.build_digit_net(width=4).eval()
    kwargs = dict(source_val=(X[:64], y[:64]), target_unlabelled=X_t[:50])
    scores = selection_scores(tt, model, target_val=(X_t[50:], y_t[50:]), **kwargs)
    assert scores["target entropy"] == pytest.approx(mean_entropy(tt.predict(model, X_t[:50])))
    assert scores["source accuracy"] == tt.evaluate(model, X[:64], y[:64])["accuracy"]
    other = selection_scores(tt, model, target_val=(X_t[50:], (y_t[50:] + 1) % 10), **kwargs)
    assert other["source accuracy"] == scores["source accuracy"]
    assert other["target entropy"] == scores["target entropy"]
    assert other["target accuracy (oracle)"] != scores["target accuracy (oracle)"]
