"""The two resizers of the test-time strategies.

``paper`` reproduces, bit for bit, how the official test code resized: ``skimage.transform.resize``
of scikit-image 0.14.5, which both official repositories pin (0.15 changed the defaults, and the
papers' numbers come from the old ones). 0.14.5 has no wheel for current Pythons; its arithmetic is
written out here, read from its source release:

1. **Coordinates.** ``resize`` fits an ``AffineTransform`` to three corner correspondences by total
   least squares (SVD of the centred, normalised points), sets the off-diagonal terms to 0, and
   samples output column ``c`` at ``params[0, 0] * c + params[0, 2]`` (rows alike). The fit puts some
   coordinates a few ulps off the exact ``scale * (i + 0.5) - 0.5``; where that value is a whole
   number, a neighbour then gets a weight of ~3e-14, which decides HYBRID's exact 0/255 test.
   :func:`skimage_0_14_transform` computes the fit once per shape pair, on the host, in NumPy
   float64 (LAPACK's last bits: the test suite checks them against 0.14.5's own ``params``).
2. **Values.** A uint8 image is read as ``img_as_float`` does, ``x * (1 / 255)`` in float64; the
   official code multiplies the result back by 255 (``uint8_range=True`` here).
3. **Interpolation.** Bilinear with ``mode='constant'`` (zeros outside the image), each pixel
   ``(1 - dr) * top + dr * bottom`` with ``top = (1 - dc) * left + dc * right``, as 0.14.5's Cython
   warp; computed columns first for every input row, then rows, which is the same arithmetic per
   pixel. Plain multiplies and adds in float64 torch on the maps' device (no ``lerp``, ``addcmul``
   or ``F.interpolate``, whose fused or reordered arithmetic gives other last bits).
4. **Clipping** (``clip=True``) to the input's range; exact zeros stay zero when 0 is outside it.

Only the fitted coordinates (a few hundred numbers per shape pair) are computed on the host; the maps
never leave their device.

``fast`` resizes with ``F.interpolate`` in float32 (bilinear, ``align_corners=False``, no
anti-aliasing, edge-replicating borders). It differs from ``paper`` near the image border and by float
rounding; docs/performance.md gives the measured matte difference (``bench/bench_inference.py``).
"""

from __future__ import annotations

import functools
import math
from typing import Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from p3m.utils.errors import SettingError

ResizeMode = Literal["paper", "fast"]
RESIZE_MODES: tuple[str, ...] = ("paper", "fast")


def resize_maps(
    maps: Tensor,
    size: tuple[int, int],
    mode: ResizeMode,
    uint8_range: bool = False,
    rows: tuple[int, int] | None = None,
) -> Tensor:
    """Resize ``(C, H, W)`` maps to ``size`` = (H', W') on the maps' device.

    Args:
        maps: The maps, any real dtype.
        size: Output (H', W').
        mode: ``paper`` returns float64, the values the official code computes; ``fast`` float32.
        uint8_range: The maps hold the 0..255 values of a uint8 image (a photo, a 0/128/255 trimap).
            ``paper`` resizes them as the official code does, ``resize(x) * 255.0`` with 0.14.5's
            ``img_as_float``; values are never rescaled in the result either way.
        rows: Only the output rows ``rows[0]:rows[1]`` (the same values as those rows of the whole
            result): ``paper`` then reads and resizes only the input rows they need.
    """
    if maps.dim() != 3:
        raise ValueError(f"expected (C, H, W) maps, got shape {tuple(maps.shape)}")
    if mode == "fast":
        resized = F.interpolate(maps[None].float(), size=size, mode="bilinear", align_corners=False)[0]
        return resized if rows is None else resized[:, rows[0] : rows[1]]
    if mode != "paper":
        raise SettingError(f"unknown resize_mode {mode!r}; expected one of {RESIZE_MODES}")
    if not uint8_range:
        return resize_like_skimage_0_14(maps.double(), size, rows)
    return resize_like_skimage_0_14(maps.double() * (1 / 255), size, rows) * 255.0


def resize_like_skimage_0_14(
    maps: Tensor, size: tuple[int, int], rows: tuple[int, int] | None = None
) -> Tensor:
    """``skimage.transform.resize(x, size, order=1, mode='constant', cval=0, clip=True)`` of 0.14.5.

    Args:
        maps: ``(C, H, W)`` float64 values, as 0.14.5 holds them after its float conversion (its clip
            takes the range over every channel, as here).
        size: Output (H', W').
        rows: Only the output rows ``rows[0]:rows[1]``, bit for bit those of the whole result.

    Returns:
        ``(C, H', W')`` float64 on the maps' device (``(C, rows[1] - rows[0], W')`` with ``rows``).
    """
    if maps.dtype != torch.float64:
        raise TypeError(f"expected float64 maps (0.14.5 resizes in double precision), got {maps.dtype}")
    params = skimage_0_14_transform(tuple(maps.shape[-2:]), tuple(size))
    rows_low, rows_high, dr = _taps(params[1, 1], params[1, 2], maps.shape[-2], size[0], maps.device)
    cols_low, cols_high, dc = _taps(params[0, 0], params[0, 2], maps.shape[-1], size[1], maps.device)
    band = maps
    if rows is not None:  # the band's taps, and only the input rows they read
        rows_low, rows_high, dr = _band(rows_low, rows), _band(rows_high, rows), dr[rows[0] : rows[1]]
        first, last = int(rows_low.index.min()), int(rows_high.index.max())
        band = maps[:, first : last + 1]
        rows_low, rows_high = (_Neighbours(n.index - first, n.outside) for n in (rows_low, rows_high))
    # In-place products and sums: the same IEEE operations as (1 - dc) * left + dc * right, with fewer
    # temporaries. (On the CPU, `gather` reads columns and indexing reads rows several times faster
    # than `index_select`.)
    shape = (*band.shape[:-1], size[1])
    left = _outside_to_zero(band.gather(-1, cols_low.index.expand(shape)), cols_low).mul_(1 - dc)
    right = _outside_to_zero(band.gather(-1, cols_high.index.expand(shape)), cols_high).mul_(dc)
    columns = left.add_(right)
    dr = dr[:, None]
    top = _outside_to_zero(columns[:, rows_low.index], rows_low, dim=-2).mul_(1 - dr)
    out = top.add_(_outside_to_zero(columns[:, rows_high.index], rows_high, dim=-2).mul_(dr))
    # clip=True: to the input's range. With cval=0 outside that range, exact zeros stay zero (one
    # scalar crosses to the host here, never a map).
    lowest, highest = maps.aminmax()
    zeros = out == 0 if bool((lowest > 0) | (highest < 0)) else None
    out.clamp_(lowest, highest)
    return out if zeros is None else out.masked_fill_(zeros, 0.0)


@functools.lru_cache(maxsize=256)
def skimage_0_14_transform(in_size: tuple[int, int], out_size: tuple[int, int]) -> np.ndarray:
    """The 3x3 transform 0.14.5's ``resize`` warps with: output (col, row, 1) -> input (x, y, 1).

    A total-least-squares fit of the affine map between three output corners and their exact input
    coordinates, with the off-diagonal terms then set to 0. Read-only; cached per shape pair.
    """
    (in_rows, in_cols), (rows, cols) = in_size, out_size
    if rows == 1 and cols == 1:
        params = np.array([[1.0, 0.0, in_cols / 2.0 - 0.5], [0.0, 1.0, in_rows / 2.0 - 0.5], [0.0, 0.0, 1.0]])
    else:
        factors = np.asarray(in_size, dtype=float) / np.asarray(out_size, dtype=float)
        src = np.array([[1, 1], [1, rows], [cols, rows]]) - 1
        dst = np.zeros(src.shape, dtype=np.double)
        dst[:, 0] = factors[1] * (src[:, 0] + 0.5) - 0.5  # pixel 0 spans (0, 1): its centre is 0.5
        dst[:, 1] = factors[0] * (src[:, 1] + 0.5) - 0.5
        params = _fit_affine_tls(src, dst)
        params[2] = (0, 0, 1)
        params[0, 1] = params[1, 0] = 0
    params.flags.writeable = False
    return params


def _fit_affine_tls(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """0.14.5's ``AffineTransform.estimate``: the null vector of the DLT system of the normalised
    points (smallest right singular vector), de-normalised."""
    src_norm, src_points = _centre_and_normalise(src)
    dst_norm, dst_points = _centre_and_normalise(dst)
    n = len(src_points)
    xs, ys = src_points[:, 0], src_points[:, 1]
    system = np.zeros((2 * n, 9))
    system[:n, 0], system[:n, 1], system[:n, 2] = xs, ys, 1
    system[n:, 3], system[n:, 4], system[n:, 5] = xs, ys, 1
    system[:n, 6], system[:n, 7] = -dst_points[:, 0] * xs, -dst_points[:, 0] * ys
    system[n:, 6], system[n:, 7] = -dst_points[:, 1] * xs, -dst_points[:, 1] * ys
    system[:n, 8], system[n:, 8] = dst_points[:, 0], dst_points[:, 1]
    affine_columns = [0, 1, 2, 3, 4, 5, 8]  # an affine map has no projective terms (6, 7)
    _, _, v = np.linalg.svd(system[:, affine_columns])
    fitted = np.zeros((3, 3))
    fitted.flat[affine_columns] = -v[-1, :-1] / v[-1, -1]
    fitted[2, 2] = 1
    return np.dot(np.linalg.inv(dst_norm), np.dot(fitted, src_norm))


def _centre_and_normalise(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley's conditioning: move the centroid to 0 and scale the RMS distance to sqrt(2)."""
    centroid = np.mean(points, axis=0)
    rms = math.sqrt(np.sum((points - centroid) ** 2) / points.shape[0])
    factor = math.sqrt(2) / rms
    matrix = np.array([[factor, 0, -factor * centroid[0]], [0, factor, -factor * centroid[1]], [0, 0, 1]])
    homogeneous = np.dot(matrix, np.vstack([points.T, np.ones(points.shape[0])])).T
    normalised = homogeneous[:, :2]
    normalised[:, 0] /= homogeneous[:, 2]
    normalised[:, 1] /= homogeneous[:, 2]
    return matrix, normalised


class _Neighbours(NamedTuple):
    """One neighbour of every output pixel along an axis: an index into the input, clamped to it,
    and the output positions whose neighbour lies outside the input (they read ``cval = 0``)."""

    index: Tensor  # type: ignore[assignment]  # shadows tuple.index, which nothing here calls
    outside: Tensor


def _outside_to_zero(values: Tensor, neighbours: _Neighbours, dim: int = -1) -> Tensor:
    """``mode='constant'``: a neighbour outside the input reads 0 (only the first or last few
    positions of an axis, so this is cheaper than padding the whole map)."""
    return values.index_fill_(dim, neighbours.outside, 0.0) if len(neighbours.outside) else values


def _band(neighbours: _Neighbours, rows: tuple[int, int]) -> _Neighbours:
    """The neighbours of output positions ``rows[0]:rows[1]``, positions counted from ``rows[0]``."""
    start, stop = rows
    outside = neighbours.outside
    return _Neighbours(neighbours.index[start:stop], outside[(outside >= start) & (outside < stop)] - start)


def _taps(
    scale: float, offset: float, n_in: int, n_out: int, device: torch.device
) -> tuple[_Neighbours, _Neighbours, Tensor]:
    """Both neighbours of each output pixel along one axis and the weight of the second, from the
    fitted ``coordinate = scale * i + offset``."""
    low, high, weight = _taps_host(scale, offset, n_in, n_out)
    return (
        _Neighbours(*(t.to(device) for t in low)),
        _Neighbours(*(t.to(device) for t in high)),
        weight.to(device),
    )


@functools.lru_cache(maxsize=256)
def _taps_host(
    scale: float, offset: float, n_in: int, n_out: int
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], Tensor]:
    coords = scale * np.arange(n_out, dtype=np.float64) + offset
    low = np.floor(coords)
    # 0.14.5 takes floor and ceil: an exact integer reads the same pixel twice, with weight 0.
    neighbours = []
    for index in (low.astype(np.int64), np.ceil(coords).astype(np.int64)):
        outside = np.flatnonzero((index < 0) | (index >= n_in))
        neighbours.append((torch.from_numpy(index.clip(0, n_in - 1)), torch.from_numpy(outside)))
    return neighbours[0], neighbours[1], torch.from_numpy(coords - low)
