"""Pieces shared by the training pipelines: sample keys, resizing, normalisation, config checks.

A training pipeline is a callable ``pipeline(sample, rng) -> batch item``:

- ``sample``: full-resolution numpy maps as read from disk: ``image`` (H, W, 3) uint8 RGB, ``alpha``
  (H, W) uint8, and when the dataset provides them ``fg``, ``bg`` (H, W, 3) uint8 RGB and
  ``facemask`` (H, W) uint8 0/255;
- ``rng``: a ``numpy.random.Generator`` that every random choice is drawn from;
- result: torch tensors ``image``, ``fg``, ``bg`` (3, S, S) ImageNet-normalised, ``alpha`` (1, S, S)
  in [0, 1], ``trimap`` (1, S, S) 0..255 and ``facemask`` (1, S, S) in [0, 1] (the project's batch
  contract), for the keys present in ``sample``.

Resizing is one ``cv2.resize(..., INTER_LINEAR)`` per uint8 map, as in the official code.

Normalisation uses a 256-entry table per channel computed with the official float32 operations
(``x / 255.0``, then ``(x - mean) / std``), so the values are bit-identical to the official
``transforms.Normalize`` output.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import torch

from p3m.utils.conventions import IMAGENET_MEAN, IMAGENET_STD

COLOUR_KEYS = ("image", "fg", "bg")  # (H, W, 3) RGB, ImageNet-normalised at the end
MAP_KEYS = ("alpha", "trimap", "facemask")  # (H, W) single-channel maps
SIZE_MULTIPLE = 32  # P3M-Net downsamples 32x


@lru_cache(maxsize=1)
def _normalise_table() -> tuple[np.ndarray, ...]:
    """Per channel, the (1, 256) float32 table of ``(x / 255 - mean) / std`` (cv2.LUT's layout)."""
    values = torch.arange(256, dtype=torch.float32) / 255.0
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None]
    std = torch.as_tensor(IMAGENET_STD, dtype=torch.float32)[:, None]
    table = ((values[None, :] - mean) / std).numpy()  # same ops and order as Normalize: sub, then div
    return tuple(_frozen(np.ascontiguousarray(row[None, :])) for row in table)


@lru_cache(maxsize=1)
def _unit_table() -> np.ndarray:
    return _frozen((torch.arange(256, dtype=torch.float32) / 255.0).numpy()[None, :])


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def normalise_image(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32, ``(x / 255 - mean) / std`` with ImageNet statistics.

    One table lookup per value, written straight into the channel planes: ``cv2.split`` makes the
    planes contiguous (uint8, cheap) and ``cv2.LUT`` maps each into its float32 plane, half the time
    of ``np.take`` on the strided channel views.
    """
    out = np.empty((3, *rgb.shape[:2]), dtype=np.float32)
    for plane, table, dst in zip(cv2.split(np.ascontiguousarray(rgb)), _normalise_table(), out, strict=True):
        cv2.LUT(plane, table, dst=dst)
    return torch.from_numpy(out)


def unit_map(values: np.ndarray) -> torch.Tensor:
    """(H, W) uint8 0..255 -> (1, H, W) float32 in [0, 1] (``x / 255`` in float32)."""
    out = np.empty((1, *values.shape[:2]), dtype=np.float32)
    cv2.LUT(np.ascontiguousarray(values), _unit_table(), dst=out[0])
    return torch.from_numpy(out)


def raw_map(values: np.ndarray) -> torch.Tensor:
    """(H, W) uint8 -> (1, H, W) float32 with the same values (the trimap keeps 0..255)."""
    return torch.from_numpy(values.astype(np.float32)[None])


def to_batch_item(maps: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Turn resized uint8 maps into the tensors of the training batch contract."""
    item: dict[str, torch.Tensor] = {}
    for key, value in maps.items():
        if key in COLOUR_KEYS:
            item[key] = normalise_image(value)
        elif key == "trimap":
            item[key] = raw_map(value)
        else:
            item[key] = unit_map(value)
    return item


def resize_maps(maps: Mapping[str, np.ndarray], size: int | tuple[int, int]) -> dict[str, np.ndarray]:
    """Bilinearly resize uint8 maps, one ``cv2.resize(INTER_LINEAR)`` per map as the official code.

    Stacking maps into one multi-channel array saves calls but not time: numpy's copy into the
    stack costs more than the calls, and OpenCV rounds an exact 2x downscale differently for arrays
    of 2 or more than 4 channels. OpenCV reads crop views in place, so no input is copied.

    Args:
        maps: name -> (H, W, C) or (H, W) uint8 array.
        size: output side, or (height, width).

    Returns:
        The same names with the resized arrays, in the same order.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    return {
        name: value
        if value.shape[:2] == (out_h, out_w)
        else cv2.resize(value, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        for name, value in maps.items()
    }


def resize_sample(sample: Mapping[str, np.ndarray], height: int, width: int) -> dict[str, np.ndarray]:
    """Resize a full-resolution sample (bilinear; the face mask nearest, it is a 0/255 label)."""
    smooth = {k: v for k, v in sample.items() if k != "facemask"}
    out = resize_maps(smooth, (height, width))
    if "facemask" in sample:
        out["facemask"] = cv2.resize(sample["facemask"], (width, height), interpolation=cv2.INTER_NEAREST)
    return out


def upscale_short_side(sample: Mapping[str, np.ndarray], min_side: int) -> dict[str, np.ndarray]:
    """Enlarge a sample whose short side is below ``min_side`` so that it becomes ``min_side``.

    The official code fails on such images (its crop region ``trimap[:h - 512, :w - 512]`` is empty
    or wraps around); we keep the aspect ratio and upscale instead, so the crop rule applies.
    """
    height, width = sample["alpha"].shape
    if min(height, width) >= min_side:
        return dict(sample)
    scale = min_side / min(height, width)
    new_h = max(min_side, int(np.ceil(height * scale - 1e-9)))
    new_w = max(min_side, int(np.ceil(width * scale - 1e-9)))
    return resize_sample(sample, new_h, new_w)


def check_sample(sample: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """Check a sample's keys, dtypes and sizes; returns its (height, width)."""
    for key in ("image", "alpha"):
        if key not in sample:
            raise KeyError(f"training sample has no {key!r} (keys: {sorted(sample)})")
    height, width = sample["alpha"].shape[:2]
    for key, value in sample.items():
        expected_ndim = 3 if key in COLOUR_KEYS else 2
        if value.dtype != np.uint8 or value.ndim != expected_ndim or value.shape[:2] != (height, width):
            raise ValueError(
                f"sample[{key!r}] is {value.shape} {value.dtype}; expected uint8 "
                f"{'(H, W, 3)' if expected_ndim == 3 else '(H, W)'} with (H, W) = {(height, width)}"
            )
    return height, width


# -- configuration checks: every bad value names its key -------------------------------------------


def as_int_tuple(value: Any, key: str, *, minimum: int = 1) -> tuple[int, ...]:
    """A non-empty sequence of ints >= ``minimum`` (Hydra hands lists over as ``ListConfig``)."""
    if isinstance(value, (int, np.integer)):
        value = [value]
    if not isinstance(value, Iterable) or isinstance(value, (str, bytes)):
        raise ValueError(f"augmentation.{key} must be a list of integers, got {value!r}")
    items = list(value)
    if not items or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
        raise ValueError(f"augmentation.{key} must be a non-empty list of integers, got {items!r}")
    if min(items) < minimum:
        raise ValueError(f"augmentation.{key} values must be >= {minimum}, got {items!r}")
    return tuple(int(v) for v in items)


def check_out_size(value: Any, key: str = "out_size") -> int:
    """Training side length: a positive multiple of 32 (P3M-Net's total stride)."""
    if (
        not isinstance(value, (int, np.integer))
        or isinstance(value, bool)
        or value <= 0
        or value % SIZE_MULTIPLE
    ):
        raise ValueError(
            f"augmentation.{key} must be a positive multiple of {SIZE_MULTIPLE} (P3M-Net downsamples "
            f"{SIZE_MULTIPLE}x), got {value!r}"
        )
    return int(value)


def check_kernel_range(value: Any) -> tuple[int, int]:
    """Inclusive range [low, high] of trimap ellipse sizes."""
    low_high = as_int_tuple(value, "kernel_range", minimum=1)
    if len(low_high) != 2 or low_high[0] > low_high[1]:
        raise ValueError(
            f"augmentation.kernel_range must be [low, high] with low <= high, got {list(low_high)}"
        )
    return low_high[0], low_high[1]


def check_probability(value: Any, key: str) -> float:
    """A probability in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"augmentation.{key} must be a probability in [0, 1], got {value!r}")
    return float(value)
