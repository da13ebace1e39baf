"""PSNR, SSIM and best matches (fedrobust.privacy_attacks.similarity)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedrobust.privacy_attacks.similarity import best_matches, psnr, ssim


def smooth_image(channels: int = 3, height: int = 16, width: int = 16) -> np.ndarray:
    """A structured image in [0, 1]: waves that differ per channel."""
    rows = np.linspace(0, np.pi, height)[:, None]
    cols = np.linspace(0, 2 * np.pi, width)[None, :]
    image = [0.5 + 0.5 * np.sin(rows * (c + 1)) * np.cos(cols + c) for c in range(channels)]
    return np.stack(image)


def test_psnr_of_a_constant_offset():
    a = np.zeros((3, 8, 8))
    assert psnr(a, a + 0.1, data_range=1.0) == pytest.approx(20.0)
    assert psnr(a, a + 25.5, data_range=255.0) == pytest.approx(20.0)
    b = a.copy()
    b[0] = 0.1  # a third of the pixels off by 0.1: MSE 0.01 / 3
    assert psnr(a, b, data_range=1.0) == pytest.approx(10 * math.log10(300))


def test_psnr_of_identical_inputs_is_infinite():
    a = smooth_image()
    assert psnr(a, a.copy(), data_range=1.0) == float("inf")


def test_psnr_refuses_different_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((2, 3)), np.zeros((3, 2)), data_range=1.0)


def test_ssim_of_identical_images_is_one():
    a = smooth_image()
    assert ssim(a, a.copy(), data_range=1.0) == pytest.approx(1.0)


def test_ssim_of_constant_images_by_hand():
    # Flat images: no variance, so SSIM is the luminance term alone.
    a = np.full((1, 8, 8), 0.2)
    b = np.full((1, 8, 8), 0.6)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert ssim(a, b, data_range=1.0) == pytest.approx(expected)


def test_ssim_drops_for_a_negative_or_noisy_image():
    a = smooth_image()
    noise = np.random.default_rng(0).normal(0.0, 0.3, a.shape)
    assert ssim(a, 1.0 - a, data_range=1.0) < 0.0
    assert ssim(a, np.clip(a + noise, 0, 1), data_range=1.0) < 0.5
    assert ssim(a, np.clip(a + noise / 30, 0, 1), data_range=1.0) > 0.9


def test_ssim_is_symmetric_and_averages_channels():
    a = smooth_image()
    b = np.clip(a + np.random.default_rng(1).normal(0.0, 0.1, a.shape), 0, 1)
    assert ssim(a, b, data_range=1.0) == pytest.approx(ssim(b, a, data_range=1.0))
    per_channel = [ssim(a[c : c + 1], b[c : c + 1], data_range=1.0) for c in range(3)]
    assert ssim(a, b, data_range=1.0) == pytest.approx(np.mean(per_channel))


@pytest.mark.parametrize("shape", [(1, 3, 3), (1, 4, 6), (2, 5, 12), (2, 1, 7, 7)])
def test_ssim_of_small_and_odd_shapes(shape: tuple[int, ...]):
    a = np.random.default_rng(2).uniform(size=shape)
    value = ssim(a, a * 0.9, data_range=1.0)
    assert value is not None and 0.0 < value < 1.0


@pytest.mark.parametrize("shape", [(36,), (6, 6), (1, 2, 10), (3, 10, 2)])
def test_ssim_is_none_for_what_is_not_an_image(shape: tuple[int, ...]):
    a = np.zeros(shape)
    assert ssim(a, a, data_range=1.0) is None


def test_best_matches_finds_the_originals_among_distractors():
    rng = np.random.default_rng(3)
    originals = rng.uniform(size=(500, 1, 6, 6))
    reconstructions = originals[[17, 3, 499]] + rng.normal(0.0, 0.02, (3, 1, 6, 6))
    matches = best_matches(reconstructions, originals, data_range=1.0)
    assert [m["index"] for m in matches] == [17, 3, 499]
    for match, reconstruction in zip(matches, reconstructions, strict=True):
        original = originals[match["index"]]
        assert match["psnr"] == pytest.approx(psnr(reconstruction, original, data_range=1.0))
        assert match["ssim"] == pytest.approx(ssim(reconstruction, original, data_range=1.0))
        assert match["psnr"] > 30


def test_best_matches_of_exact_copies_and_flat_inputs():
    originals = np.random.default_rng(4).uniform(size=(10, 36))
    matches = best_matches(originals[[5]], originals, data_range=1.0)
    assert matches == [{"index": 5, "psnr": float("inf"), "ssim": None}]


def test_best_matches_refuses_different_example_shapes():
    with pytest.raises(ValueError, match="example shapes differ"):
        best_matches(np.zeros((2, 36)), np.zeros((5, 35)), data_range=1.0)
