"""Tests of src/p3m/data. Helpers here build tiny P3M-10k-shaped datasets in ``tmp_path`` with cv2, so the
data tests depend neither on the reference fixtures nor on the synthetic generator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

EVAL_SPLITS = [
    {
        "name": "P3M-500-P",
        "prefix": "p",
        "image_dir": "P3M-500-P/blurred_image",
        "mask_dir": "P3M-500-P/mask",
        "trimap_dir": "P3M-500-P/trimap",
        "facemask_dir": "P3M-500-P/facemask",
    },
    {
        "name": "P3M-500-NP",
        "prefix": "np",
        "image_dir": "P3M-500-NP/original_image",
        "mask_dir": "P3M-500-NP/mask",
        "trimap_dir": "P3M-500-NP/trimap",
        "facemask_dir": None,
    },
]


def portrait(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A random RGB image and an alpha matte with solid fg, solid bg and a soft band between."""
    image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 2)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = height * rng.uniform(0.45, 0.6), width * rng.uniform(0.4, 0.6)
    radius = np.sqrt(((yy - cy) / (0.35 * height)) ** 2 + ((xx - cx) / (0.3 * width)) ** 2)
    alpha = np.clip((1.15 - radius) / 0.3, 0.0, 1.0)
    return image, np.round(alpha * 255).astype(np.uint8)


def write(path: Path, array: np.ndarray) -> Path:
    """Write an RGB (H, W, 3) or grey (H, W) uint8 array with cv2 (creating folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = array[:, :, ::-1] if array.ndim == 3 and array.shape[2] == 3 else array
    assert cv2.imwrite(str(path), np.ascontiguousarray(data)), path
    return path


def make_p3m_tree(
    root: Path,
    *,
    num_train: int = 4,
    num_eval: int = 2,
    size: tuple[int, int] = (72, 64),
    fg_dir: str | None = "fg_blurred",
    bg: bool = True,
    facemask: bool = False,
    original: bool = False,
    validation_level: bool = True,
    seed: int = 0,
) -> Path:
    """Write a tiny dataset in the P3M-10k release layout and return its root."""
    rng = np.random.default_rng(seed)
    train = root / "train"
    for i in range(num_train):
        stem = f"p_{i:04d}"
        image, alpha = portrait(rng, *size)
        write(train / "blurred_image" / f"{stem}.jpg", image)
        write(train / "mask" / f"{stem}.png", alpha)
        if fg_dir:
            write(train / fg_dir / f"{stem}.png", image)
        if bg:
            write(train / "bg" / f"{stem}.jpg", cv2.GaussianBlur(image, (0, 0), 3))
        if facemask:
            face = np.zeros(size, np.uint8)
            face[: size[0] // 3, size[1] // 3 : 2 * size[1] // 3] = 255
            write(train / "facemask" / f"{stem}.png", face)
        if original:
            write(train / "original_image" / f"{stem}.jpg", 255 - image)
    base = root / "validation" if validation_level else root
    for split, image_name in (("P3M-500-P", "blurred_image"), ("P3M-500-NP", "original_image")):
        for i in range(num_eval):
            stem = f"{'np' if split.endswith('NP') else 'p'}_{i:04d}"
            image, alpha = portrait(rng, size[0] + 8 * i, size[1])
            write(base / split / image_name / f"{stem}.jpg", image)
            write(base / split / "mask" / f"{stem}.png", alpha)
            trimap = np.where(alpha == 255, 255, np.where(alpha > 0, 128, 0)).astype(np.uint8)
            write(base / split / "trimap" / f"{stem}.png", trimap)
    return root


def assert_same_samples(expected_set: Any, actual_set: Any, seeds: int = 3) -> None:
    """Two training sets give bit-identical samples (every key) for the same random draws."""
    for seed in range(seeds):
        expected_set.reseed(seed)
        actual_set.reseed(seed)
        for index in range(len(expected_set)):
            expected, got = expected_set[index], actual_set[index]
            assert set(expected) == set(got) == {"image", "alpha", "trimap", "fg", "bg", "facemask", "index"}
            assert expected.pop("index") == got.pop("index") == index
            for key in expected:
                assert torch.equal(expected[key], got[key]), (seed, index, key)
