"""Fourier style transfer: content (phase) kept, low-frequency amplitude taken from the style."""

import numpy as np
import pytest

from tlcourse.style import fourier_style_transfer, low_frequency_mask


def _images(n, seed):
    return np.random.default_rng(seed).uniform(0.2, 0.8, (n, 28, 28)).astype(np.float32)


def test_mask_is_a_centred_symmetric_square():
    assert not low_frequency_mask((28, 28), 0.0).any()
    assert not low_frequency_mask((28, 28), 0.03).any()  # floor(0.84) = 0 frequencies
    mask = low_frequency_mask((28, 28), 0.1)  # b = 2: frequencies -2..2 on each axis
    assert mask.sum() == 25 and mask[0, 0] and mask[2, -2] and not mask[3, 0]
    np.testing.assert_array_equal(mask, np.roll(mask[::-1, ::-1], (1, 1), axis=(0, 1)))
    for bad in (-0.1, 0.6):
        with pytest.raises(ValueError, match="beta"):
            low_frequency_mask((28, 28), bad)


def test_beta_zero_changes_nothing():
    content, style = _images(4, 0), _images(3, 1)
    np.testing.assert_array_equal(fourier_style_transfer(content, style, beta=0.0), content)


def test_low_frequencies_come_from_the_style_and_the_phase_from_the_content():
    # Values in [0.2, 0.8] and a gentle style keep the result inside [0, 1]: no clipping.
    content, style = _images(5, 2), _images(1, 3) * 0.5 + 0.25
    out = fourier_style_transfer(content, style, beta=0.1, seed=0)
    assert out.shape == content.shape and out.dtype == np.float32
    assert 0 < out.min() and out.max() < 1
    mask = low_frequency_mask((28, 28), 0.1)
    F_out, F_content = np.fft.fft2(out), np.fft.fft2(content)
    np.testing.assert_allclose(
        np.abs(F_out)[:, mask],
        np.broadcast_to(np.abs(np.fft.fft2(style))[:, mask], (5, 25)),
        rtol=1e-4,
        atol=1e-3,
    )
    np.testing.assert_allclose(np.abs(F_out)[:, ~mask], np.abs(F_content)[:, ~mask], atol=1e-3)
    strong = np.abs(F_content) > 1.0  # the phase is well defined where the amplitude is not tiny
    phase_diff = np.angle(F_out[strong] * np.conj(F_content[strong]))
    assert np.abs(phase_diff).max() < 1e-3
    # The mean brightness (zero frequency) is the style's.
    np.testing.assert_allclose(out.mean(axis=(1, 2)), style.mean(), rtol=1e-4)


def test_seed_picks_the_style_images():
    content, style = _images(6, 4), _images(6, 5)
    a = fourier_style_transfer(content, style, beta=0.1, seed=0)
    np.testing.assert_array_equal(a, fourier_style_transfer(content, style, beta=0.1, seed=0))
    assert not np.array_equal(a, fourier_style_transfer(content, style, beta=0.1, seed=1))


def test_bad_input_is_refused():
    good = _images(2, 0)
    with pytest.raises(ValueError, match="sizes differ"):
        fourier_style_transfer(good, np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="X_style"):
        fourier_style_transfer(good, np.zeros((0, 28, 28)))
    with pytest.raises(ValueError, match="X_content"):
        fourier_style_transfer(good[0], good)
    with pytest.raises(ValueError, match="NaN"):
        fourier_style_transfer(np.full((1, 28, 28), np.nan), good)
    with pytest.raises(ValueError, match="beta"):
        fourier_style_transfer(good, good, beta=1.0)
