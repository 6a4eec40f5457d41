"""The two resizers of the test-time strategies.

``paper`` reproduces how the official test code resized: ``skimage.transform.resize`` as in the
scikit-image 0.14.5 both official repositories pin, i.e. bilinear (order 1), ``mode='constant'``
(zeros outside the image, so border pixels blend towards 0), no anti-aliasing and ``clip=True``.
scikit-image 0.15 changed the first two defaults, and the papers' numbers come from the old ones.
0.14.5 has no wheel for current Pythons, so its arithmetic is written out here in NumPy (float64, on
the CPU, as the official code): output pixel ``i`` samples the input at ``scale * (i + 0.5) - 0.5``,
mixes the two neighbours of each axis as ``(1 - d) * a + d * b`` (columns first, then rows, as its
Cython warp) and clips to the input's range. It equals today's ``skimage.transform.resize`` with those
settings to ~3e-16 (bit-identical after the cast to float32) and is faster: 34 ms instead of 170 ms
for a 512 -> 1080 px map, which scikit-image zooms with its channel axis as a third dimension.

``fast`` resizes on the tensor's device with ``F.interpolate`` (bilinear, ``align_corners=False``, no
anti-aliasing, edge-replicating borders). It differs from ``paper`` only near the image border and
by float rounding; ``bench/bench_inference.py`` and the README state the measured matte difference.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ResizeMode = Literal["paper", "fast"]
RESIZE_MODES: tuple[str, ...] = ("paper", "fast")


def resize_maps(maps: Tensor, size: tuple[int, int], mode: ResizeMode) -> Tensor:
    """Resize ``(C, H, W)`` maps to ``size`` = (H', W'); float32 on the maps' device.

    Values are not rescaled: a map in [0, 255] stays in [0, 255].
    """
    if mode == "fast":
        out = F.interpolate(maps[None].float(), size=size, mode="bilinear", align_corners=False)
        return out[0]
    if mode != "paper":
        raise ValueError(f"unknown resize_mode {mode!r}; expected one of {RESIZE_MODES}")
    if maps.dim() != 3:
        raise ValueError(f"expected (C, H, W) maps, got shape {tuple(maps.shape)}")
    array = maps.detach().cpu().numpy().astype(np.float64)
    out = resize_like_skimage_0_14(array, size).astype(np.float32)
    return torch.from_numpy(out).to(maps.device)


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both neighbours (indices into the input padded by one zero) and the weight of the second."""
    x = (n_in / n_out) * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5
    low = np.floor(x)
    # 0.14.5 takes floor and ceil: an exact integer reads the same pixel twice, with weight 0.
    return low.astype(np.intp) + 1, np.ceil(x).astype(np.intp) + 1, x - low


def resize_like_skimage_0_14(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``skimage.transform.resize(x, size, order=1, mode='constant', cval=0, clip=True)`` of 0.14.5.

    Args:
        maps: ``(C, H, W)`` float64 values in their own range (as with ``preserve_range``).
        size: Output (H', W').

    Returns:
        ``(C, H', W')`` float64.
    """
    rows_low, rows_high, dr = _taps(maps.shape[-2], size[0])
    cols_low, cols_high, dc = _taps(maps.shape[-1], size[1])
    dr = dr[:, None]
    out = np.empty((maps.shape[0], *size), dtype=np.float64)
    for channel, plane in enumerate(maps):  # one channel at a time bounds the memory of large images
        padded = np.pad(plane, 1)  # mode='constant', cval=0
        # Interpolating along the columns first, for every input row, then picking rows is the same
        # arithmetic as 0.14.5's per-pixel (1 - dr) * top + dr * bottom, at a fraction of the work.
        columns = (1 - dc) * padded.take(cols_low, axis=1) + dc * padded.take(cols_high, axis=1)
        out[channel] = (1 - dr) * columns.take(rows_low, axis=0) + dr * columns.take(rows_high, axis=0)
    # clip=True: to the input's range; with cval=0 outside that range, exact zeros stay zero.
    lowest, highest = maps.min(), maps.max()
    zeros = out == 0 if (lowest > 0 or highest < 0) else None
    np.clip(out, lowest, highest, out=out)
    if zeros is not None:
        out[zeros] = 0.0
    return out
