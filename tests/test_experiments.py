import math

import numpy as np
import pytest

import tlcourse.torch as tt
from tlcourse.experiments import format_mean_std, run_cross_domain
from tlcourse.schedules import cosine_factor


def test_run_cross_domain_shape_and_range(tiny_digits):
    (X, y), (X_test, y_test) = tiny_digits
    acc = run_cross_domain(
        tt,
        {"a": (X, y), "b": (X[:64], y[:64])},
        {"a": (X_test, y_test), "b": (X, y), "c": (X_test[:50], y_test[:50])},
        seeds=[0, 1],
        num_epochs={"a": 2, "b": 1},
        width=4,
        quiet=True,
    )
    assert acc.shape == (2, 2, 3)
    assert ((acc >= 0) & (acc <= 1)).all()
    # Accuracies on 50 images are multiples of 1/50.
    np.testing.assert_allclose(acc[..., 2] * 50, np.round(acc[..., 2] * 50), atol=1e-9)


def test_run_cross_domain_errors(tiny_digits):
    (X, y), _ = tiny_digits
    with pytest.raises(ValueError, match="no entry for training domains"):
        run_cross_domain(tt, {"a": (X, y)}, {"a": (X, y)}, [0], num_epochs={"b": 1})
    with pytest.raises(ValueError, match="non-empty"):
        run_cross_domain(tt, {"a": (X, y)}, {"a": (X, y)}, [])


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
