import math

import numpy as np
import pytest

import tlcourse.torch as tt
from tlcourse.experiments import format_mean_std, run_cross_domain, run_few_shot
from tlcourse.schedules import cosine_factor


@pytest.mark.slow
def test_run_cross_domain_scores_every_run_on_every_test_domain(tiny_digits):
    (X, y), (X_test, y_test) = tiny_digits
    args = (
        tt,
        {"a": (X, y), "b": (X[:64], y[:64])},
        {"a": (X_test, y_test), "b": (X, y), "c": (X_test[:50], y_test[:50])},
    )
    kwargs = dict(seeds=[0, 1], num_epochs={"a": 2, "b": 1}, width=4, quiet=True)
    acc = run_cross_domain(*args, **kwargs)
    assert acc.shape == (2, 2, 3)
    # Accuracies on 50 images are multiples of 1/50.
    np.testing.assert_allclose(acc[..., 2] * 50, np.round(acc[..., 2] * 50), atol=1e-9)
    # The last run (seed 1, domain "b"), repeated by hand, gives its row of the result.
    tt.set_seed(1)
    model = tt.build_digit_net(width=4)
    tt.fit(model, X[:64], y[:64], num_epochs=1, batch_size=128, lr=3e-3, seed=1, quiet=True)
    tests = [(X_test, y_test), (X, y), (X_test[:50], y_test[:50])]
    expected = [tt.evaluate(model, Xt, yt)["accuracy"] for Xt, yt in tests]
    np.testing.assert_allclose(acc[1, 1], expected)
    # That run, handed in as already made, is scored and not trained again: same result.
    reused = run_cross_domain(*args, trained={(1, "b"): model}, **kwargs)
    np.testing.assert_array_equal(reused, acc)


def test_run_cross_domain_errors(tiny_digits):
    (X, y), _ = tiny_digits
    with pytest.raises(ValueError, match="no entry for training domains"):
        run_cross_domain(tt, {"a": (X, y)}, {"a": (X, y)}, [0], num_epochs={"b": 1})
    with pytest.raises(ValueError, match="non-empty"):
        run_cross_domain(tt, {"a": (X, y)}, {"a": (X, y)}, [])
    with pytest.raises(ValueError, match="does not make"):
        run_cross_domain(tt, {"a": (X, y)}, {"a": (X, y)}, [0], trained={(1, "a"): None})


def test_format_mean_std():
    values = np.array([[0.90, 0.5], [1.00, 0.5]])
    out = format_mean_std(values)
    assert out.tolist() == ["95.0 ± 7.1", "50.0 ± 0.0"]
    assert format_mean_std(np.array([1.0, 3.0]), percent=False).item() == "2.0 ± 1.4"
    with pytest.raises(ValueError, match="two seeds"):
        format_mean_std(np.array([[0.9, 0.8]]))


def test_cosine_schedule():
    assert cosine_factor(0, 100) == 1.0
    assert cosine_factor(50, 100) == pytest.approx(0.5)
    assert cosine_factor(100, 100) == pytest.approx(0.0)
    assert cosine_factor(25, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine_factor(30, 100, "constant") == 1.0
    with pytest.raises(ValueError, match="Unknown schedule"):
        cosine_factor(1, 10, "step")


def test_torch_and_keras_follow_the_same_learning_rate_schedule():
    import keras

    total = 40
    keras_schedule = keras.optimizers.schedules.CosineDecay(2.0, total)
    for step in (0, 7, 20, 33, 40):
        assert float(keras_schedule(step)) == pytest.approx(
            2.0 * cosine_factor(step, total), abs=1e-6
        )


def test_run_few_shot_uses_k_labels_and_a_fixed_test_set(tiny_digits):
    from tlcourse.data import make_few_shot_split

    (X, y), _ = tiny_digits
    seen = []

    def make_model():
        model = tt.build_digit_net(width=4)
        seen.append(model)
        return model

    acc = run_few_shot(
        tt,
        make_model,
        X,
        y,
        k_per_class=2,
        seeds=[0, 1],
        test_per_class=5,
        num_epochs=1,
        quiet=True,
    )
    assert acc.shape == (2,)
    assert len(seen) == 2 and seen[0] is not seen[1]
    # Each seed's cell is its own model's score on the shared test set (not an unfilled 0).
    split = make_few_shot_split(y, 2, seed=0, test_per_class=5)
    for i in range(2):
        expected = tt.evaluate(seen[i], X[split.test], y[split.test])["accuracy"]
        assert acc[i] == pytest.approx(expected)
    with pytest.raises(ValueError, match="seeds must be non-empty"):
        run_few_shot(tt, make_model, X, y, k_per_class=2, seeds=[])


@pytest.mark.slow
def test_run_few_shot_in_keras_traces_once_and_matches_fresh_models(tiny_digits):
    """One model object for every seed (reuse_model): one traced step, and each seed's
    accuracy is the one a newly built model of that seed reaches."""
    import tlcourse.keras as tk

    (X, y), _ = tiny_digits
    made = []

    def make_model():
        made.append(tk.build_digit_net(width=4))
        return made[-1]

    kwargs = dict(k_per_class=3, test_per_class=5, num_epochs=2, batch_size=8, lr=3e-3)
    acc = run_few_shot(tk, make_model, X, y, seeds=[0, 1], quiet=True, **kwargs)
    assert len(made) == 2 and made[0].train_function is not None
    assert getattr(made[1], "train_function", None) is None  # it only lent its weights
    from tlcourse.data import make_few_shot_split

    split = make_few_shot_split(y, 3, seed=1, test_per_class=5)
    tk.set_seed(1)
    model = tk.build_digit_net(width=4)
    tk.fit(
        model,
        X[split.train],
        y[split.train],
        num_epochs=2,
        batch_size=8,
        lr=3e-3,
        seed=1,
        quiet=True,
    )
    assert acc[1] == tk.evaluate(model, X[split.test], y[split.test])["accuracy"]
    # A shared ``kept`` carries the model and its traced step into the next call, with
    # another recipe (rate, batch size, length), and gives what a fresh model gives.
    kept = {}
    run_few_shot(tk, make_model, X, y, seeds=[0], quiet=True, kept=kept, **kwargs)
    (model_a,) = kept.values()
    train_function = model_a.train_function
    other = dict(kwargs, num_epochs=3, batch_size=4, lr=1e-2)
    shared = run_few_shot(tk, make_model, X, y, seeds=[1], quiet=True, kept=kept, **other)
    assert model_a.train_function is train_function
    alone = run_few_shot(tk, make_model, X, y, seeds=[1], quiet=True, **other)
    np.testing.assert_array_equal(shared, alone)


def test_reuse_model_refuses_a_model_of_another_shape():
    from tlcourse.experiments.few_shot import reuse_model

    kept = {}
    first = tt.build_digit_net(width=4)
    assert reuse_model(tt, kept, "k", first) is first
    tt.set_seed(1)
    second = tt.build_digit_net(width=4)
    assert reuse_model(tt, kept, "k", second) is first
    assert all(
        np.array_equal(a, b)
        for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="mismatched"):
        reuse_model(tt, kept, "k", tt.build_digit_net(width=8))


def test_clearly_above_needs_every_seed_or_a_gap_beyond_the_spread():
    from tlcourse.experiments import clearly_above

    assert clearly_above([0.9, 0.8, 0.85], [0.8, 0.7, 0.84])  # every seed
    assert not clearly_above([0.9, 0.8, 0.85], [0.8, 0.7, 0.86])  # one seed loses, big spread
    assert clearly_above([0.9, 0.9, 0.9, 0.9], [0.8, 0.8, 0.8, 0.91])  # 7.25 > 5.5 spread
    assert not clearly_above([0.9, 0.8], [0.8, 0.7], margin=0.1)  # the margin is not beaten
    with pytest.raises(ValueError, match="paired"):
        clearly_above([0.9], [0.8])


def test_no_clear_difference_fails_for_a_win_either_way_beyond_the_margin():
    from tlcourse.experiments import no_clear_difference

    torch_, keras_ = [0.80, 0.85, 0.90], [0.79, 0.86, 0.89]
    assert no_clear_difference(torch_, keras_, margin=0.02)
    assert no_clear_difference(keras_, torch_, margin=0.02)
    ahead = [0.84, 0.89, 0.94]  # 4 points ahead on every seed
    assert not no_clear_difference(ahead, keras_, margin=0.02)
    assert not no_clear_difference(keras_, ahead, margin=0.02)  # symmetric
    assert no_clear_difference(ahead, keras_, margin=0.06)  # within a wider margin
    noisy = [0.70, 0.95, 0.88]  # a 3-point mean gap, but one seed behind: no clear win
    assert no_clear_difference(noisy, [0.80, 0.80, 0.82], margin=0.0)
