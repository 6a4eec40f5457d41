"""Conventions every package shares: which files are images and videos, ImageNet normalisation,
trimap values, the official trimap kernel and its scaling, and a mask's bounding box. One definition
each."""

from __future__ import annotations

import numpy as np

#: Image file suffixes the project reads (lower case, with the dot), wherever it lists a folder.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

#: Video file suffixes ``p3m predict`` reads through PyAV (FFmpeg) (lower case, with the dot).
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

#: ImageNet statistics every backbone was pretrained with (RGB, values in [0, 1]).
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Trimap values: background, unknown (transition) and foreground.
TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND = 0, 128, 255
TRIMAP_VALUES: tuple[int, int, int] = (TRIMAP_BACKGROUND, TRIMAP_UNKNOWN, TRIMAP_FOREGROUND)

#: The elliptic kernel of the official trimaps (and of P3M-10k's face anonymization band) at
#: P3M-10k's 1080 px short side.
KERNEL_AT_1080 = 25


def kernel_for_size(height: int, width: int, at_1080: int = KERNEL_AT_1080) -> int:
    """``at_1080`` px scaled from a 1080 px short side to this image: odd, at least 3."""
    return max(3, round(at_1080 * min(height, width) / 1080) | 1)


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` (end-exclusive) of the true pixels of a 2-D mask, or None if there are none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
