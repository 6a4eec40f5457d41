"""Face obfuscation: confined to face mask minus transition band, each method's property, bad inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from p3m.privacy import (
    FaceObfuscator,
    gaussian_blur,
    mosaic,
    obfuscate_face,
    obfuscation_region,
    transition_band,
)
from p3m.privacy.obfuscate import METHODS, _box_widths

H, W = 64, 80


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture
def facemask() -> np.ndarray:
    """A 0/255 ellipse touching nothing, plus a block at the right border (the box spans both)."""
    mask = np.zeros((H, W), np.uint8)
    cv2.ellipse(mask, (30, 30), (14, 18), 0, 0, 360, 255, -1)
    mask[50:60, 70:80] = 255
    return mask


@pytest.fixture
def alpha() -> np.ndarray:
    """Opaque on the left, transparent on the right, with a soft ramp along x = 28..35."""
    row = np.clip((36 - np.arange(W)) * 32, 0, 255).astype(np.uint8)
    return np.tile(row, (H, 1))


def _official_band(alpha: np.ndarray, k: int) -> np.ndarray:
    """The official trimap rule on the whole image, written out independently."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    reachable = cv2.dilate((alpha != 0).astype(np.float32), kernel)
    definite = cv2.erode((alpha == 255).astype(np.float32), kernel)
    trimap = (definite * 255 + (reachable - definite) * 128).astype(np.uint8)
    return trimap == 128


@pytest.mark.parametrize("method", METHODS)
def test_only_the_face_changes_and_input_is_untouched(image, facemask, method) -> None:
    before = image.copy()
    out = obfuscate_face(image, facemask, method)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(image, before)  # the input is not modified
    outside = facemask == 0
    np.testing.assert_array_equal(out[outside], image[outside])
    changed = (out != image).any(axis=2)
    assert changed[facemask > 0].mean() > 0.9


@pytest.mark.parametrize("method", METHODS)
def test_transition_band_is_left_untouched(image, facemask, alpha, method) -> None:
    k = 9
    out = obfuscate_face(image, facemask, method, alpha=alpha, band_kernel=k)
    band = _official_band(alpha, k)
    keep = (facemask == 0) | band
    np.testing.assert_array_equal(out[keep], image[keep])
    region = obfuscation_region(facemask, alpha=alpha, band_kernel=k)
    np.testing.assert_array_equal(region, (facemask > 0) & ~band)
    # Opaque face pixels and transparent ones far from the edge are both obfuscated (only the band is spared).
    changed = (out != image).any(axis=2)
    assert changed[region].mean() > 0.9
    assert region[:, :20].any() and region[:, 60:].any()


def test_trimap_gives_the_same_result_as_its_alpha(image, facemask, alpha) -> None:
    band = _official_band(alpha, 9)
    trimap = np.where(band, 128, np.where(alpha == 255, 255, 0)).astype(np.uint8)
    from_alpha = obfuscate_face(image, facemask, "mosaic", alpha=alpha, band_kernel=9)
    np.testing.assert_array_equal(obfuscate_face(image, facemask, "mosaic", trimap=trimap), from_alpha)
    # A bilinearly resized trimap has intermediate values: they count as band too.
    trimap_float = trimap.astype(np.float32)
    trimap_float[band] = 100.5
    np.testing.assert_array_equal(obfuscate_face(image, facemask, "mosaic", trimap=trimap_float), from_alpha)


@pytest.mark.parametrize("k", [1, 4, 15, 25])
def test_transition_band_matches_the_official_rule(k) -> None:
    rng = np.random.default_rng(k)
    alpha = cv2.resize(rng.integers(0, 256, (6, 7), dtype=np.uint8), (W, H), interpolation=cv2.INTER_LINEAR)
    alpha[alpha > 200] = 255
    alpha[alpha < 40] = 0
    np.testing.assert_array_equal(transition_band(alpha, k), _official_band(alpha, k))
    # Float alphas in 0..1 give the same band.
    float_alpha = alpha.astype(np.float32) / 255
    np.testing.assert_array_equal(transition_band(float_alpha, k), _official_band(alpha, k))


@pytest.mark.parametrize("k", [4, 15])
def test_band_computed_on_the_face_box_equals_the_full_image_band(k) -> None:
    """The band is computed on the face box plus the kernel's reach only: exact, also at image borders.

    Sparse transparent holes everywhere make the band depend on pixels just outside any box.
    """
    rng = np.random.default_rng(k)
    alpha = np.where(rng.random((H, W)) < 0.01, 0, 255).astype(np.uint8)
    image = rng.integers(1, 256, (H, W, 3), dtype=np.uint8)  # no black pixel: black means obfuscated
    band = _official_band(alpha, k)
    for y0, y1, x0, x1 in [(0, 10, 20, 40), (50, 64, 60, 80), (20, 40, 25, 40), (0, 64, 0, 80)]:
        mask = np.zeros((H, W), bool)
        mask[y0:y1, x0:x1] = True
        out = obfuscate_face(image, mask, "zero", alpha=alpha, band_kernel=k)
        np.testing.assert_array_equal((out == 0).all(axis=2), mask & ~band)


def test_opaque_alpha_absorbs_annotation_noise() -> None:
    alpha = np.full((40, 40), 254, np.uint8)
    alpha[:, 30:] = 0
    assert transition_band(alpha, 5)[:, :20].all()  # the official rule: 254 is not opaque
    relaxed = transition_band(alpha, 5, opaque_alpha=250)
    assert not relaxed[:, :20].any() and relaxed[:, 28:32].all()
    assert not transition_band(alpha.astype(np.float32) / 255, 5, opaque_alpha=250)[:, :20].any()


def test_zero_fills_black(image, facemask) -> None:
    out = obfuscate_face(image, facemask, "zero")
    assert (out[facemask > 0] == 0).all()


def test_mosaic_blocks_are_constant_and_hold_the_block_mean() -> None:
    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:7] = 1  # box 4 x 5: face size 5, block = round(0.4 * 5) = 2 px, last column a 2x1 block
    out = obfuscate_face(img, mask, "mosaic", mosaic_block=0.4)
    crop, src = out[2:6, 2:7].astype(float), img[2:6, 2:7].astype(float)
    for by in (0, 2):
        for bx in (0, 2, 4):
            block = crop[by : by + 2, bx : bx + 2]
            assert (block == block[0, 0]).all()
            expected = np.rint(src[by : by + 2, bx : bx + 2].mean(axis=(0, 1)))
            np.testing.assert_array_equal(block[0, 0], expected)
    # Hand-computed: the top-left block averages pixels (2,2), (2,3), (3,2), (3,3) of channel 0:
    # (2*8+2)*3 = 54, 57, 78, 81 -> 67.5 -> 68 (round half to even).
    assert out[2, 2, 0] == 68


def test_mosaic_blocks_are_constant_on_an_irregular_face(image, facemask) -> None:
    out = obfuscate_face(image, facemask, "mosaic", mosaic_block=0.25)
    face = facemask > 0
    ys, xs = np.nonzero(face)
    block = round(0.25 * max(np.ptp(ys) + 1, np.ptp(xs) + 1))
    cells = ((ys - ys.min()) // block) * 1000 + (xs - xs.min()) // block
    values = out[ys, xs]
    for cell in np.unique(cells):
        assert (values[cells == cell] == values[cells == cell][0]).all()


def test_blur_smooths_the_face(image, facemask) -> None:
    out = obfuscate_face(image, facemask, "blur", blur_sigma=0.25)
    face = facemask > 0
    assert (out != image).any(axis=2)[face].mean() > 0.95
    # Noise of std ~74 becomes nearly flat.
    assert out[face].astype(float).std() < 0.2 * image[face].astype(float).std()
    again = obfuscate_face(image, facemask, "blur", blur_sigma=0.25)
    assert again.tobytes() == out.tobytes()  # deterministic


def test_gaussian_blur_approximates_an_exact_gaussian() -> None:
    rng = np.random.default_rng(1)
    img = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (64, 64), interpolation=cv2.INTER_CUBIC)
    for sigma, mean_diff in ((2.0, 1.5), (6.0, 1.0), (12.0, 1.0)):
        k = 2 * int(np.ceil(4 * sigma)) + 1
        exact = cv2.GaussianBlur(img, (k, k), sigma, borderType=cv2.BORDER_REFLECT_101)
        diff = np.abs(gaussian_blur(img, sigma).astype(int) - exact.astype(int))
        assert diff.max() <= 6 and diff.mean() < mean_diff
        assert np.abs(img.astype(int) - exact).mean() > 5 * mean_diff  # the blur itself is much larger
    np.testing.assert_array_equal(gaussian_blur(img, 0.0), img)


@pytest.mark.parametrize("sigma", [0.5, 3.0, 17.3, 80.0])
def test_box_widths_match_the_gaussian_variance(sigma) -> None:
    widths = _box_widths(sigma, passes=3)
    assert all(w % 2 == 1 for w in widths)
    variance = sum((w * w - 1) / 12 for w in widths)
    assert abs(variance - sigma**2) <= max(1.0, 0.1 * sigma**2)


def test_mosaic_function_handles_partial_blocks() -> None:
    img = np.full((5, 3, 3), 10, np.uint8)
    img[4, :] = 40
    out = mosaic(img, 4)
    assert (out[:4] == 10).all() and (out[4] == 40).all()


def test_empty_mask_returns_an_unchanged_copy(image, facemask, alpha) -> None:
    out = obfuscate_face(image, np.zeros((H, W), np.uint8), "zero")
    assert out is not image
    np.testing.assert_array_equal(out, image)
    # A face entirely inside the band is also left as is.
    band_only = np.zeros((H, W), bool)
    band_only[:, 31:33] = True
    np.testing.assert_array_equal(obfuscate_face(image, band_only, "zero", alpha=alpha, band_kernel=9), image)


def test_mask_formats_are_equivalent(image, facemask) -> None:
    ref = obfuscate_face(image, facemask, "mosaic")
    for mask in (facemask > 0, (facemask > 0).astype(np.float32), facemask[:, :, None]):
        np.testing.assert_array_equal(obfuscate_face(image, mask, "mosaic"), ref)


def test_face_obfuscator_binds_the_settings(image, facemask, alpha) -> None:
    obfuscator = FaceObfuscator(method="mosaic", mosaic_block=0.2, band_kernel=7)
    expected = obfuscate_face(image, facemask, "mosaic", alpha=alpha, mosaic_block=0.2, band_kernel=7)
    np.testing.assert_array_equal(obfuscator(image, facemask, alpha=alpha), expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "pixelate"}, "unknown obfuscation method 'pixelate'"),
        ({"blur_sigma": -1.0}, "blur_sigma"),
        ({"mosaic_block": 0.0}, "mosaic_block"),
        ({"band_kernel": 0}, "band_kernel"),
        ({"opaque_alpha": 0}, "opaque_alpha"),
    ],
)
def test_bad_settings_are_rejected(image, facemask, kwargs, message) -> None:
    method = kwargs.pop("method", "blur")
    with pytest.raises(ValueError, match=message):
        obfuscate_face(image, facemask, method, **kwargs)
    with pytest.raises(ValueError, match=message):
        FaceObfuscator(method=method, **kwargs)


def test_bad_arrays_are_rejected(image, facemask, alpha) -> None:
    with pytest.raises(ValueError, match=r"facemask has size \(32, 80\) but the image is \(64, 80\)"):
        obfuscate_face(image, facemask[:32], "zero")
    with pytest.raises(ValueError, match="alpha has size"):
        obfuscate_face(image, facemask, "zero", alpha=alpha[:, :40])
    with pytest.raises(ValueError, match=r"image must be an \(H, W, 3\) uint8"):
        obfuscate_face(image.astype(np.float32), facemask, "zero")
    with pytest.raises(ValueError, match=r"image must be an \(H, W, 3\) uint8"):
        obfuscate_face(image[:, :, 0], facemask, "zero")
    with pytest.raises(ValueError, match=r"facemask must be \(H, W\) or \(H, W, 1\)"):
        obfuscate_face(image, np.stack([facemask] * 3, axis=2), "zero")
    with pytest.raises(ValueError, match="not both"):
        obfuscate_face(image, facemask, "zero", alpha=alpha, trimap=alpha)
    with pytest.raises(ValueError, match="alpha must be uint8"):
        obfuscate_face(image, facemask, "zero", alpha=alpha.astype(np.uint16))
    with pytest.raises(ValueError, match=r"float alpha must be in 0\.\.1"):
        obfuscate_face(image, facemask, "zero", alpha=alpha.astype(np.float32))
    with pytest.raises(ValueError, match="trimap has size"):  # checked even when the mask is empty
        obfuscate_face(image, np.zeros((H, W), bool), "zero", trimap=alpha[:10])


def test_transition_band_reproduces_the_sample_trimaps(samples_dir: Path) -> None:
    """The sample trimaps were made with the official rule, kernel 25: their 128 region is our band."""
    split = samples_dir / "validation" / "P3M-500-NP"
    for alpha_path in sorted((split / "mask").glob("*.png"))[:2]:
        alpha = cv2.imread(str(alpha_path), cv2.IMREAD_GRAYSCALE)
        trimap = cv2.imread(str(split / "trimap" / alpha_path.name), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(transition_band(alpha, 25), trimap == 128)
