"""Training trimaps made online from the alpha matte, as the official code makes them.

The official rule (``gen_trimap_with_dilate``): with ``K`` the OpenCV ellipse of size ``k``,

    foreground = erode(alpha == 255, K)          -> 255
    unknown    = dilate(alpha > 0, K) - foreground -> 128
    elsewhere                                     -> 0

computed on the whole image. Erosion and dilation are local (a pixel's value depends only on the
alpha inside ``K`` placed at that pixel), so this module computes the same values on just the part
that is needed:

- :func:`trimap_from_alpha`: the whole trimap, on bit-packed rows (faster than OpenCV's general
  mask morphology, same result).
- :func:`trimap_window`: the trimap of a crop, from the crop plus the kernel's reach on each side,
  clipped at the image borders. OpenCV's default morphology border ignores pixels outside the
  array, which is exactly what happens at the true image borders of the full computation, and
  inside the image the margin supplies every neighbour. Bit-identical to cropping the full trimap.
- :func:`trimap_at`: the trimap value at a list of pixels, from the alpha under the kernel.
  Bit-identical by the same argument.
- :func:`sample_transition_pixel`: a uniformly drawn unknown (128) pixel of a region, by rejection
  sampling with :func:`trimap_at` (the first accepted draw of an i.i.d. uniform sequence is uniform
  over the accepted set), falling back to the exact trimap of the region when unknown pixels are
  rare. Exact in distribution; never builds the full-size trimap in the common case.

Tests compare all three with :func:`trimap_from_alpha` on the whole image, for every kernel size
the training draws and at the image borders.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from p3m.utils.conventions import TRIMAP_BACKGROUND, TRIMAP_FOREGROUND, TRIMAP_UNKNOWN


@lru_cache(maxsize=64)
def trimap_kernel(kernel_size: int) -> np.ndarray:
    """The official structuring element: ``cv2.MORPH_ELLIPSE`` of ``kernel_size`` x ``kernel_size``."""
    if kernel_size < 1:
        raise ValueError(f"trimap kernel size must be >= 1, got {kernel_size}")
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    kernel.setflags(write=False)
    return kernel


def kernel_reach(kernel_size: int) -> tuple[int, int]:
    """How far the kernel looks (before, after) the pixel along each axis.

    OpenCV anchors a ``k`` x ``k`` kernel at ``k // 2``, so it covers offsets ``-(k // 2)`` to
    ``k - 1 - k // 2`` (asymmetric for even ``k``).
    """
    before = kernel_size // 2
    return before, kernel_size - 1 - before


@lru_cache(maxsize=64)
def _kernel_offsets(kernel_size: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(trimap_kernel(kernel_size))
    before, _ = kernel_reach(kernel_size)
    dy, dx = rows.astype(np.int64) - before, cols.astype(np.int64) - before
    dy.setflags(write=False)
    dx.setflags(write=False)
    return dy, dx


_WORD = 64  # pixels per packed word
# trimap value from (reachable bit) + 2 * (not-foreground bit): foreground wins, as in the official sum.
_TRIMAP_LUT = np.zeros((1, 256), np.uint8)
_TRIMAP_LUT[0, :4] = (TRIMAP_FOREGROUND, TRIMAP_FOREGROUND, TRIMAP_BACKGROUND, TRIMAP_UNKNOWN)


@lru_cache(maxsize=64)
def _kernel_rows(kernel_size: int) -> tuple[tuple[int, int, int], ...]:
    """The ellipse as rows ``(dy, first dx, last dx)`` of offsets from the anchor (rows are runs)."""
    kernel = trimap_kernel(kernel_size)
    before, _ = kernel_reach(kernel_size)
    rows = []
    for row in range(kernel_size):
        cols = np.flatnonzero(kernel[row])
        if cols.size:
            if cols.size != cols[-1] - cols[0] + 1:  # never for OpenCV's ellipse; the packing relies on it
                raise ValueError(f"trimap kernel {kernel_size} has a row with a gap: {kernel[row]}")
            rows.append((row - before, int(cols[0]) - before, int(cols[-1]) - before))
    return tuple(rows)


def _shift_columns(words: np.ndarray, shift: int) -> np.ndarray:
    """Packed rows moved so that pixel ``x`` holds pixel ``x + shift`` (zeros shifted in)."""
    if shift == 0:
        return words
    out = np.zeros_like(words)
    count = words.shape[1]
    whole, bits = divmod(abs(shift), _WORD)
    if whole >= count:
        return out
    if shift > 0:
        source = words[:, whole:]
        if bits == 0:
            out[:, : count - whole] = source
        else:
            out[:, : count - whole] = source >> np.uint64(bits)
            out[:, : count - whole - 1] |= source[:, 1:] << np.uint64(_WORD - bits)
    else:
        source = words[:, : count - whole]
        if bits == 0:
            out[:, whole:] = source
        else:
            out[:, whole:] = source << np.uint64(bits)
            out[:, whole + 1 :] |= source[:, :-1] >> np.uint64(_WORD - bits)
    return out


def _pack(mask: np.ndarray, pad_words: int) -> np.ndarray:
    """(H, W) bool -> (H, pad + ceil(W / 64)) uint64, pixel x at bit x of the row after ``pad`` words."""
    height, width = mask.shape
    packed = np.packbits(mask, axis=1, bitorder="little")
    words = pad_words + -(-width // _WORD)
    buffer = np.zeros((height, words * 8), np.uint8)
    buffer[:, pad_words * 8 : pad_words * 8 + packed.shape[1]] = packed
    return buffer.view("<u8")


def _unpack(words: np.ndarray, width: int, pad_words: int) -> np.ndarray:
    """Inverse of :func:`_pack`: (H, W) uint8 0/1."""
    body = np.ascontiguousarray(words[:, pad_words:]).view(np.uint8)
    return np.unpackbits(body, axis=1, count=width, bitorder="little")


def _dilate_packed(words: np.ndarray, kernel_size: int) -> np.ndarray:
    """OR of the pixels under the kernel at every pixel; pixels outside the image count as 0.

    Per kernel row ``(dy, a, b)``: a horizontal OR over offsets ``a..b`` (two shifts of a
    power-of-two run, the runs built by doubling), then the row shifted by ``dy`` ORed in.
    """
    rows = _kernel_rows(kernel_size)
    segments = sorted({(a, b) for _, a, b in rows})
    longest = max(b - a + 1 for a, b in segments)
    runs = {1: words}  # runs[m](x) = OR of pixels x .. x + m - 1
    length = 1
    while 2 * length <= longest:
        runs[2 * length] = runs[length] | _shift_columns(runs[length], length)
        length *= 2
    horizontal = {}
    for a, b in segments:
        span = b - a + 1
        run = 1 << (span.bit_length() - 1)  # largest power of two <= span; two copies cover a..b
        horizontal[(a, b)] = _shift_columns(runs[run], a) | _shift_columns(runs[run], b - run + 1)
    height = words.shape[0]
    out = np.zeros_like(words)
    for dy, a, b in rows:
        source = horizontal[(a, b)]
        if abs(dy) >= height:
            continue  # the whole row offset falls outside the image
        if dy >= 0:
            out[: height - dy] |= source[dy:]
        else:
            out[-dy:] |= source[: height + dy]
    return out


def trimap_from_alpha(alpha: np.ndarray, kernel_size: int) -> np.ndarray:
    """The official training trimap of a whole alpha matte.

    Computed on bit-packed rows (64 pixels per machine word): dilation is an OR over the ellipse's
    offsets, erosion the complement of the dilation of the complement (outside pixels count as
    0 for the OR, i.e. they are ignored, as OpenCV's default border does for both). Faster than
    ``cv2.dilate``/``cv2.erode`` with the ellipse mask for the official k = 15..30, and equal to them
    bit for bit (tests compare with the official float32 OpenCV computation).

    Args:
        alpha: (H, W) uint8 alpha matte, 0..255.
        kernel_size: size of the ellipse (the official code draws it from 15..30).

    Returns:
        (H, W) uint8 trimap with values 0, 128, 255.
    """
    if alpha.dtype != np.uint8 or alpha.ndim != 2:
        raise ValueError(f"trimap_from_alpha expects an (H, W) uint8 alpha, got {alpha.shape} {alpha.dtype}")
    reachable = dilate_mask(alpha > 0, kernel_size)
    not_foreground = dilate_mask(alpha != TRIMAP_FOREGROUND, kernel_size)
    return cv2.LUT(cv2.add(reachable, cv2.add(not_foreground, not_foreground)), _TRIMAP_LUT)


def dilate_mask(mask: np.ndarray, kernel_size: int) -> np.ndarray:
    """``cv2.dilate`` of an (H, W) bool mask with the official ellipse, bit for bit, as uint8 0/1.

    Pixels outside the image count as 0, as OpenCV's default border does for dilation; an erosion
    with its default border is the complement of the dilation of the complement. Computed on
    bit-packed rows (see :func:`trimap_from_alpha`).
    """
    reach = max(max(-a, b) for _, a, b in _kernel_rows(kernel_size))
    # Left padding keeps partial runs that start left of column 0 (they still cover valid pixels).
    pad = max(1, -(-reach // _WORD))
    return _unpack(_dilate_packed(_pack(mask, pad), kernel_size), mask.shape[1], pad)


def trimap_unknown(reachable: np.ndarray, opaque: np.ndarray, kernel_size: int) -> np.ndarray:
    """The official trimap's unknown region as a bool (H, W) mask: ``dilate(reachable)`` minus
    ``erode(opaque)`` (``reachable``: alpha > 0; ``opaque``: alpha == 255 in the official code)."""
    return (dilate_mask(reachable, kernel_size) & dilate_mask(~opaque, kernel_size)).astype(bool)


def trimap_window(
    alpha: np.ndarray, kernel_size: int, top: int, left: int, height: int, width: int
) -> np.ndarray:
    """``trimap_from_alpha(alpha, k)[top:top + height, left:left + width]`` without the full image.

    Args:
        alpha: (H, W) uint8 alpha matte of the whole image.
        kernel_size: ellipse size.
        top, left, height, width: the window, inside the image.

    Returns:
        (height, width) uint8 trimap, bit-identical to the crop of the full trimap.
    """
    full_h, full_w = alpha.shape
    if top < 0 or left < 0 or top + height > full_h or left + width > full_w or height <= 0 or width <= 0:
        raise ValueError(
            f"trimap window (top={top}, left={left}, {height}x{width}) is outside the {full_h}x{full_w} alpha"
        )
    before, after = kernel_reach(kernel_size)
    y0, x0 = max(0, top - before), max(0, left - before)
    y1, x1 = min(full_h, top + height + after), min(full_w, left + width + after)
    window = trimap_from_alpha(alpha[y0:y1, x0:x1], kernel_size)
    return window[top - y0 : top - y0 + height, left - x0 : left - x0 + width]


def trimap_at(alpha: np.ndarray, kernel_size: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Official trimap values at pixels ``(ys[i], xs[i])`` of the whole image, from the alpha alone.

    Args:
        alpha: (H, W) uint8 alpha matte.
        kernel_size: ellipse size.
        ys, xs: (N,) integer pixel coordinates inside the image.

    Returns:
        (N,) uint8 values 0, 128 or 255.
    """
    full_h, full_w = alpha.shape
    dy, dx = _kernel_offsets(kernel_size)
    rows = np.asarray(ys, dtype=np.int64)[:, None] + dy[None, :]
    cols = np.asarray(xs, dtype=np.int64)[:, None] + dx[None, :]
    # Neighbours outside the image do not take part, as with OpenCV's default morphology border.
    inside = (rows >= 0) & (rows < full_h) & (cols >= 0) & (cols < full_w)
    values = alpha[np.clip(rows, 0, full_h - 1), np.clip(cols, 0, full_w - 1)]
    reachable = ((values > 0) & inside).any(axis=1)
    foreground = ((values == 255) | ~inside).all(axis=1)
    return np.where(
        foreground, TRIMAP_FOREGROUND, np.where(reachable, TRIMAP_UNKNOWN, TRIMAP_BACKGROUND)
    ).astype(np.uint8)


def sample_transition_pixel(
    alpha: np.ndarray,
    kernel_size: int,
    region_height: int,
    region_width: int,
    rng: np.random.Generator,
    rounds: tuple[int, ...] = (64, 256),
) -> tuple[int, int] | None:
    """Draw a pixel uniformly among the unknown (128) pixels of ``trimap[:region_height, :region_width]``.

    The trimap is that of the whole image (``trimap_from_alpha(alpha, kernel_size)``), so neighbours
    beyond the region count, as in the official ``trimap[:h - crop, :w - crop]``.

    Args:
        alpha: (H, W) uint8 alpha matte.
        kernel_size: ellipse size.
        region_height, region_width: the region, anchored at the top-left corner.
        rng: source of randomness.
        rounds: batch sizes of the rejection rounds before falling back to the exact region trimap.

    Returns:
        (y, x) of the drawn pixel, or ``None`` when the region has no unknown pixel (or is empty).
    """
    if region_height <= 0 or region_width <= 0:
        return None
    _, after = kernel_reach(kernel_size)
    reach = alpha[: region_height + after, : region_width + after]  # every pixel any window sees
    low, high = cv2.minMaxLoc(reach)[:2]
    if high == 0 or low == 255:  # all background or all foreground: no unknown pixel at all
        return None
    for count in rounds:
        ys = rng.integers(0, region_height, size=count)
        xs = rng.integers(0, region_width, size=count)
        # A fractional alpha at the pixel itself makes it unknown (dilate = 1, erode = 0): accept
        # the first such draw unless an earlier draw is unknown through its neighbourhood, which
        # only the window test can tell. Either way the first unknown draw of the sequence wins.
        centre = alpha[ys, xs]
        fractional = np.flatnonzero((centre > 0) & (centre < 255))
        first = int(fractional[0]) if fractional.size else count
        if first:
            hits = np.flatnonzero(trimap_at(alpha, kernel_size, ys[:first], xs[:first]) == TRIMAP_UNKNOWN)
            if hits.size:
                first = int(hits[0])
        if first < count:
            return int(ys[first]), int(xs[first])
    # Rare unknown pixels: enumerate them exactly instead of drawing forever.
    region = trimap_window(alpha, kernel_size, 0, 0, region_height, region_width)
    rows, cols = np.nonzero(region == TRIMAP_UNKNOWN)
    if rows.size == 0:
        return None
    pick = int(rng.integers(rows.size))
    return int(rows[pick]), int(cols[pick])
