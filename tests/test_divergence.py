import numpy as np
import pytest

from tlcourse.divergence import proxy_a_distance


def test_same_distribution_gives_about_zero():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(600, 5)), rng.normal(size=(600, 5))
    assert abs(proxy_a_distance(a, b)) < 0.3


def test_separated_distributions_give_about_two():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(600, 5))
    b = rng.normal(size=(600, 5)) + 4.0
    assert proxy_a_distance(a, b) > 1.9


def test_partial_overlap_lies_in_between():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(1000, 1))
    b = rng.normal(size=(1000, 1)) + 1.0
    # Bayes error of N(0,1) vs N(1,1) is Phi(-0.5) = 0.3085, so d_A is about 0.77.
    assert 0.5 < proxy_a_distance(a, b) < 1.0


def test_images_are_flattened():
    rng = np.random.default_rng(0)
    a = rng.random((100, 4, 4))
    assert abs(proxy_a_distance(a, rng.random((100, 16)))) < 0.6


def test_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="features; they must match"):
        proxy_a_distance(rng.random((50, 3)), rng.random((50, 4)))
    with pytest.raises(ValueError, match="at least 10 rows"):
        proxy_a_distance(rng.random((5, 3)), rng.random((50, 3)))
