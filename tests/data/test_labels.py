"""Soft mattes and binary masks told apart; a binary mask's band and its pseudo-labels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from p3m.data.labels import (
    band_kernel_for,
    binarize,
    label_stats,
    pseudo_labelled,
    transition_band,
)
from p3m.data.synthetic_portrait import render_portrait


def _soft(seed: int = 0, size: tuple[int, int] = (192, 144)) -> np.ndarray:
    return render_portrait(np.random.default_rng(seed), *size).alpha


def _jpeg(mask: np.ndarray, quality: int = 85) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", mask, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 0)


def _antialiased(mask: np.ndarray) -> np.ndarray:
    """The mask drawn at 4x with smooth edges, then averaged down: one soft pixel across each edge."""
    h, w = mask.shape
    big = cv2.resize(mask, (w * 4, h * 4), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(np.where(big >= 128, 255, 0).astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_and_sample_mattes_are_soft(seed: int, samples_dir) -> None:
    assert not label_stats(_soft(seed)).binary
    mask = cv2.imread(str(sorted((samples_dir / "train" / "mask").iterdir())[seed]), cv2.IMREAD_GRAYSCALE)
    assert not label_stats(mask).binary


def test_masks_from_segmentation_tools_are_binary() -> None:
    mask = binarize(_soft(), 0, 255)
    assert set(np.unique(mask)) == {0, 255}
    for label in (mask, mask // 255, _jpeg(mask), _antialiased(mask), np.zeros_like(mask)):
        stats = label_stats(label)
        assert stats.binary, (stats, stats.ratio)


def test_a_feathered_mask_counts_as_soft() -> None:
    mask = binarize(_soft(), 0, 255)
    assert not label_stats(cv2.GaussianBlur(mask, (0, 0), 2.0)).binary


def test_binarize_makes_0_255_from_0_1_and_noisy_masks() -> None:
    mask = binarize(_soft(), 0, 255)
    np.testing.assert_array_equal(binarize(mask // 255, 0, 1), mask)
    noisy = _jpeg(mask)
    stats = label_stats(noisy)
    assert np.mean(binarize(noisy, stats.low, stats.high) != mask) < 0.001


def test_band_kernel_scales_with_the_short_side() -> None:
    assert band_kernel_for(1080, 1920, 61) == 61
    assert band_kernel_for(2160, 3840, 61) == 123
    assert band_kernel_for(144, 192, 61) == 9


def test_the_band_holds_the_soft_pixels_around_the_boundary() -> None:
    soft = _soft(size=(384, 288))
    mask = binarize(soft, 0, 255)
    band = transition_band(mask, band_kernel_for(*mask.shape, 61))
    blurry = (soft > 0) & (soft < 255)
    assert band[blurry].mean() > 0.9  # most of the matte's soft pixels lie in the band
    assert band.mean() < 0.25  # and the band is a band, not the image
    assert not band[mask == 255].all() and not band[mask == 0].all()


def test_pseudo_labels_change_only_the_band() -> None:
    mask = binarize(_soft(), 0, 255)
    kernel = band_kernel_for(*mask.shape, 61)
    matte = np.full_like(mask, 77)
    labelled = pseudo_labelled(mask, kernel, matte)
    band = transition_band(mask, kernel)
    assert (labelled[band] == 77).all()
    np.testing.assert_array_equal(labelled[~band], mask[~band])
    with pytest.raises(ValueError, match="expected"):
        pseudo_labelled(mask, kernel, matte[:10])
