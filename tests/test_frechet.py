"""The Fréchet distance against closed forms on Gaussians."""

import numpy as np
import pytest

from tlcourse.frechet import frechet_distance, gaussian_frechet_distance


def test_closed_form_for_diagonal_gaussians():
    # For diagonal covariances: |mu_a - mu_b|^2 + sum_i (sigma_a,i - sigma_b,i)^2.
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    sd_a, sd_b = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.5])
    expected = ((mu_a - mu_b) ** 2).sum() + ((sd_a - sd_b) ** 2).sum()
    value = gaussian_frechet_distance(mu_a, np.diag(sd_a**2), mu_b, np.diag(sd_b**2))
    assert value == pytest.approx(expected, rel=1e-9)


def test_closed_form_for_a_rotated_gaussian():
    # Rotating a Gaussian about its mean leaves the distance to itself at zero, and the
    # distance between N(0, A) and N(0, B) for commuting A, B is tr((sqrt A - sqrt B)^2).
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    A = Q @ np.diag([1.0, 4.0, 9.0, 0.25]) @ Q.T
    B = Q @ np.diag([4.0, 1.0, 1.0, 1.0]) @ Q.T
    expected = ((np.sqrt([1.0, 4.0, 9.0, 0.25]) - np.sqrt([4.0, 1.0, 1.0, 1.0])) ** 2).sum()
    assert gaussian_frechet_distance(np.zeros(4), A, np.zeros(4), B) == pytest.approx(expected)
    assert gaussian_frechet_distance(np.ones(4), A, np.ones(4), A) == pytest.approx(0, abs=1e-8)


def test_samples_approach_the_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal([0.0, 0.0], [1.0, 2.0], size=(20000, 2))
    b = rng.normal([3.0, 0.0], [1.0, 1.0], size=(20000, 2))
    expected = 9.0 + (2.0 - 1.0) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # Symmetric, and larger for a larger shift.
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a))
    assert frechet_distance(a, b + [1.0, 0.0]) > frechet_distance(a, b)


def test_degenerate_features_do_not_give_nan():
    rng = np.random.default_rng(2)
    a = np.c_[rng.normal(size=(50, 3)), np.zeros(50)]  # one feature never varies
    b = np.c_[rng.normal(size=(50, 3)), np.zeros(50)]
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value >= 0


@pytest.mark.parametrize(
    "a, b, message",
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), "Feature sizes differ"),
        (np.zeros(5), np.zeros((5, 1)), "shape"),
        (np.zeros((1, 3)), np.zeros((5, 3)), "N >= 2"),
        (np.full((3, 2), np.nan), np.zeros((3, 2)), "NaN"),
    ],
)
def test_bad_input_is_a_clear_error(a, b, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance(a, b)
