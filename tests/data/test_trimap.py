"""Online trimaps: the fast local computations equal the official whole-image rule exactly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from p3m.data.trimap import sample_transition_pixel, trimap_at, trimap_from_alpha, trimap_window
from tests.data import portrait


def official_trimap(alpha: np.ndarray, kernel_size: int) -> np.ndarray:
    """The official gen_trimap_with_dilate, written out: float32 0/1 maps, whole image."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    reachable = cv2.dilate((alpha != 0).astype(np.float32), kernel, iterations=1)
    foreground = cv2.erode((alpha == 255).astype(np.float32), kernel, iterations=1)
    return (foreground * 255 + (reachable - foreground) * 128).astype(np.uint8)


@pytest.fixture(scope="module")
def alphas() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    _, soft = portrait(rng, 90, 70)
    edges = np.zeros((60, 50), np.uint8)  # fg and fractional alpha touching every border
    edges[:20, :15] = 255
    edges[-10:, 20:] = rng.integers(0, 256, (10, 30))
    edges[30, -1] = 3
    edges[:, 0] = 255
    speckle = rng.choice(np.array([0, 0, 255, 255, 90], np.uint8), size=(80, 200))  # several packed words
    return [soft, edges, speckle]


def test_kernel_sizes_are_nontrivial(alphas: list[np.ndarray]) -> None:
    trimap = trimap_from_alpha(alphas[0], 15)
    assert set(np.unique(trimap)) == {0, 128, 255}


@pytest.mark.parametrize("kernel_size", [*range(1, 31), 45, 131])
def test_whole_image_matches_official(alphas: list[np.ndarray], kernel_size: int) -> None:
    for alpha in alphas:
        np.testing.assert_array_equal(
            trimap_from_alpha(alpha, kernel_size), official_trimap(alpha, kernel_size)
        )


@pytest.mark.parametrize("kernel_size", [3, 15, 16, 23, 30])
def test_windows_and_points_match_the_full_trimap(alphas: list[np.ndarray], kernel_size: int) -> None:
    rng = np.random.default_rng(kernel_size)
    for alpha in alphas[:2]:  # small enough to check every pixel
        full = official_trimap(alpha, kernel_size)
        height, width = alpha.shape
        windows = [(0, 0, height, width), (0, 0, 5, 7), (height - 9, width - 4, 9, 4)]
        for _ in range(20):
            h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
            windows.append((int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w))
        for top, left, h, w in windows:
            np.testing.assert_array_equal(
                trimap_window(alpha, kernel_size, top, left, h, w), full[top : top + h, left : left + w]
            )
        ys, xs = np.divmod(np.arange(height * width), width)  # every pixel, borders included
        np.testing.assert_array_equal(trimap_at(alpha, kernel_size, ys, xs), full[ys, xs])


def test_window_outside_the_image_is_an_error(alphas: list[np.ndarray]) -> None:
    with pytest.raises(ValueError, match=r"outside"):
        trimap_window(alphas[0], 15, 80, 0, 20, 20)


@pytest.mark.parametrize("rounds", [(64, 256), ()], ids=["rejection", "exact-fallback"])
def test_transition_pixel_is_uniform_over_the_region(rounds: tuple[int, ...]) -> None:
    alpha = np.zeros((40, 40), np.uint8)
    alpha[10:30, 12:28] = 255
    kernel_size, region = 5, (20, 16)  # the official trimap[:H - c, :W - c] with c = 20, 24
    full = official_trimap(alpha, kernel_size)
    unknown = {tuple(p) for p in np.argwhere(full[: region[0], : region[1]] == 128)}
    assert 20 < len(unknown) < region[0] * region[1] // 2
    rng = np.random.default_rng(0)
    draws = 60 * len(unknown)
    counts: dict[tuple[int, int], int] = {}
    for _ in range(draws):
        pixel = sample_transition_pixel(alpha, kernel_size, *region, rng, rounds=rounds)
        counts[pixel] = counts.get(pixel, 0) + 1
    assert set(counts) == unknown  # every unknown pixel of the region, nothing else
    observed = np.array(list(counts.values()), dtype=float)
    expected = draws / len(unknown)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < len(unknown) + 5 * np.sqrt(2 * len(unknown))  # far inside the chi-square tail


def test_no_transition_pixel_gives_none() -> None:
    rng = np.random.default_rng(0)
    assert sample_transition_pixel(np.zeros((40, 40), np.uint8), 15, 20, 20, rng) is None
    assert sample_transition_pixel(np.full((40, 40), 255, np.uint8), 15, 20, 20, rng) is None
    assert sample_transition_pixel(np.full((40, 40), 128, np.uint8), 15, 0, 20, rng) is None


def test_rare_transition_pixels_are_found_exactly() -> None:
    alpha = np.zeros((200, 200), np.uint8)
    alpha[150, 150] = 77  # reaches into the region only through the kernel: one in 10,000 pixels
    rng = np.random.default_rng(0)
    pixel = sample_transition_pixel(alpha, 3, 151, 151, rng)
    assert pixel is not None and official_trimap(alpha, 3)[pixel] == 128
