"""Face obfuscation for privacy-preserving training: blur, mosaic (pixelation) or zero (black fill).

P3M-10k was anonymized by obfuscating the face *minus the alpha transition band*, so the hair and
the soft edges that matting is about keep their real pixels. Here the obfuscated region is::

    region = facemask AND NOT band

where ``band`` is the unknown region of the trimap built from the alpha with the official training
rule (``ellipse`` structuring element of size ``band_kernel``; ``fg = erode(alpha == 255)``,
``unknown = dilate(alpha > 0) - fg``), or the non-0/255 pixels of a given trimap. Without alpha
and trimap the whole face mask is obfuscated.

Caveat, measured on the two P3M-500-NP sample faces: their annotated alphas are 254, not 255, in
a fifth of the face, so the official rule (kernel 25) leaves 30-43 % of a detected face mask
untouched. ``opaque_alpha=250`` (alpha >= 250 counts as opaque) brings that down to 12-18 %, a
smaller ``band_kernel`` further; the defaults stay with the official rule.

Sizes are relative to the face, so a setting looks the same on a 4000 px original, a 1080 px
P3M-10k image or a training crop: ``face size`` is the longer side of the face mask's bounding box.

- ``blur``: Gaussian blur with ``sigma = blur_sigma * face size`` (default 0.25). At that strength a
  face becomes a smooth skin-coloured patch with only the broad shading left, as in P3M-10k's
  blurred images. The Gaussian is computed as three successive box filters in float32 (a few
  grey levels at most from an exact Gaussian, under one on average for sigma >= 3 px), whose cost
  does not grow with sigma, where ``cv2.GaussianBlur``'s grows with its kernel.
- ``mosaic``: the face's bounding box is cut into square blocks of ``mosaic_block * face size``
  pixels (default 0.125: 8 blocks across the face), aligned to the box's top-left corner; every
  block is replaced by its mean colour (rounded half to even).
- ``zero``: the region is set to 0 (black).

Everything is computed on the face mask's bounding box only (the band on that box plus the kernel
radius, which gives exactly the full-image band), so apart from copying the image the cost does
not depend on the image size. Pixels outside the region are bit-identical to the input, and the
result is deterministic. Any 3-channel uint8 image works: the three methods treat channels
alike, so RGB and BGR give the same result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from p3m.data.trimap import trimap_unknown
from p3m.utils.conventions import bounding_box
from p3m.utils.errors import SettingError

ObfuscationMethod = Literal["blur", "mosaic", "zero"]
METHODS: tuple[str, ...] = ("blur", "mosaic", "zero")
DEFAULT_BLUR_SIGMA = 0.25
DEFAULT_MOSAIC_BLOCK = 0.125
DEFAULT_BAND_KERNEL = 25  # the kernel of our sample trimaps; the official training draws 15..30
DEFAULT_OPAQUE_ALPHA = 255  # the official rule: only alpha == 255 is definite foreground


def obfuscate_face(
    image: np.ndarray,
    facemask: np.ndarray,
    method: ObfuscationMethod = "blur",
    *,
    alpha: np.ndarray | None = None,
    trimap: np.ndarray | None = None,
    blur_sigma: float = DEFAULT_BLUR_SIGMA,
    mosaic_block: float = DEFAULT_MOSAIC_BLOCK,
    band_kernel: int = DEFAULT_BAND_KERNEL,
    opaque_alpha: int = DEFAULT_OPAQUE_ALPHA,
) -> np.ndarray:
    """Obfuscate the face of ``image`` inside ``facemask``, minus the alpha transition band.

    Args:
        image: ``(H, W, 3)`` uint8 image (RGB or BGR).
        facemask: ``(H, W)`` or ``(H, W, 1)`` mask; every nonzero value counts as face (so 0/1, 0/255
            and resized float masks all work, and a soft edge is obfuscated rather than leaked).
        method: ``blur``, ``mosaic`` or ``zero``.
        alpha: Optional ``(H, W)`` alpha matte, uint8 0..255 or float 0..1; its transition band is
            left untouched.
        trimap: Optional ``(H, W)`` trimap on the 0..255 scale; every value other than 0 and 255 is
            the transition band (resized trimaps have intermediate values). Give alpha or trimap,
            not both.
        blur_sigma: Gaussian sigma as a fraction of the face size (``blur``).
        mosaic_block: Mosaic block side as a fraction of the face size (``mosaic``); at least 1 px.
        band_kernel: Size of the elliptic structuring element that makes the band from ``alpha``.
        opaque_alpha: Alpha values >= this (on the 0..255 scale) are definite foreground when
            making the band (255: the official rule).

    Returns:
        A new ``(H, W, 3)`` uint8 array; a copy of ``image`` when the mask (minus the band) is empty.

    Raises:
        ValueError: Unknown method, bad parameter, or an array of the wrong shape or dtype.
    """
    _check_params(method, blur_sigma, mosaic_block, band_kernel, opaque_alpha)
    _check_image(image)
    height, width = image.shape[:2]
    face = _as_2d(facemask, "facemask", (height, width)) != 0
    if alpha is not None and trimap is not None:
        raise ValueError("give alpha or trimap to exclude the transition band, not both")
    if alpha is not None:
        alpha = _as_2d(alpha, "alpha", (height, width))
    if trimap is not None:
        trimap = _as_2d(trimap, "trimap", (height, width))
    out = image.copy()
    box = bounding_box(face)
    if box is None:
        return out
    y0, y1, x0, x1 = box
    region = face[y0:y1, x0:x1]
    if alpha is not None:
        region = region & ~_band_in_box(alpha, box, band_kernel, opaque_alpha)
    elif trimap is not None:
        tri = trimap[y0:y1, x0:x1]
        region = region & ((tri == 0) | (tri == 255))
    if not region.any():
        return out

    crop = image[y0:y1, x0:x1]
    face_size = max(y1 - y0, x1 - x0)
    if method == "blur":
        replaced = gaussian_blur(crop, blur_sigma * face_size)
    elif method == "mosaic":
        replaced = mosaic(crop, max(1, round(mosaic_block * face_size)))
    else:
        replaced = np.zeros_like(crop)
    out[y0:y1, x0:x1][region] = replaced[region]
    return out


def obfuscation_region(
    facemask: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    trimap: np.ndarray | None = None,
    band_kernel: int = DEFAULT_BAND_KERNEL,
    opaque_alpha: int = DEFAULT_OPAQUE_ALPHA,
) -> np.ndarray:
    """The full-size boolean mask of the pixels :func:`obfuscate_face` replaces (for tests and plots)."""
    face = _as_2d(facemask, "facemask", None) != 0
    if alpha is not None and trimap is not None:
        raise ValueError("give alpha or trimap to exclude the transition band, not both")
    if alpha is not None:
        return face & ~transition_band(_as_2d(alpha, "alpha", face.shape), band_kernel, opaque_alpha)
    if trimap is not None:
        tri = _as_2d(trimap, "trimap", face.shape)
        return face & ((tri == 0) | (tri == 255))
    return face


def transition_band(
    alpha: np.ndarray, kernel_size: int = DEFAULT_BAND_KERNEL, opaque_alpha: int = DEFAULT_OPAQUE_ALPHA
) -> np.ndarray:
    """The unknown region of the trimap the official code builds from ``alpha`` (boolean ``(H, W)``).

    ``dilate(alpha > 0) AND NOT erode(alpha >= opaque)`` with an elliptic ``kernel_size`` element;
    ``opaque`` is ``opaque_alpha`` (255: the official ``alpha == 255``) for uint8 alphas and
    ``opaque_alpha / 255`` for float alphas in 0..1.
    """
    alpha = _as_2d(alpha, "alpha", None)
    height, width = alpha.shape
    return _band_in_box(alpha, (0, height, 0, width), kernel_size, opaque_alpha)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a uint8 image as three box filters (cost independent of ``sigma``).

    The box widths follow the standard construction for an n-pass box approximation of a Gaussian
    (odd widths, total variance as close as possible to ``sigma**2``); borders are reflected.
    """
    if sigma <= 0:
        return image.copy()
    work: np.ndarray = image.astype(np.float32)
    for width in _box_widths(sigma, passes=3):
        if width > 1:
            work = cv2.blur(work, (width, width), borderType=cv2.BORDER_REFLECT_101)
    return np.clip(np.rint(work), 0, 255).astype(np.uint8)


def mosaic(image: np.ndarray, block: int) -> np.ndarray:
    """Replace every ``block`` x ``block`` cell (from the top-left; edge cells are smaller) by its mean."""
    height, width = image.shape[:2]
    rows, cols = -(-height // block), -(-width // block)
    padded = np.zeros((rows * block, cols * block, image.shape[2]), np.float64)
    padded[:height, :width] = image
    count = np.zeros((rows * block, cols * block, 1), np.float64)
    count[:height, :width] = 1
    sums = padded.reshape(rows, block, cols, block, -1).sum(axis=(1, 3))
    counts = count.reshape(rows, block, cols, block, 1).sum(axis=(1, 3))
    means = np.rint(sums / counts).astype(np.uint8)
    return np.repeat(np.repeat(means, block, axis=0), block, axis=1)[:height, :width]


@dataclass(frozen=True)
class FaceObfuscator:
    """:func:`obfuscate_face` with its settings bound, for configs (``_target_: p3m.privacy.FaceObfuscator``).

    Attributes:
        method: ``blur``, ``mosaic`` or ``zero``.
        blur_sigma: Gaussian sigma as a fraction of the face size.
        mosaic_block: Mosaic block side as a fraction of the face size.
        band_kernel: Elliptic kernel size of the transition band made from the alpha.
        opaque_alpha: Alpha (0..255) from which a pixel is definite foreground for the band.
    """

    method: ObfuscationMethod = "blur"
    blur_sigma: float = DEFAULT_BLUR_SIGMA
    mosaic_block: float = DEFAULT_MOSAIC_BLOCK
    band_kernel: int = DEFAULT_BAND_KERNEL
    opaque_alpha: int = DEFAULT_OPAQUE_ALPHA

    def __post_init__(self) -> None:
        _check_params(self.method, self.blur_sigma, self.mosaic_block, self.band_kernel, self.opaque_alpha)

    def __call__(
        self,
        image: np.ndarray,
        facemask: np.ndarray,
        alpha: np.ndarray | None = None,
        trimap: np.ndarray | None = None,
    ) -> np.ndarray:
        """Obfuscate ``image`` inside ``facemask`` (minus the band of ``alpha`` or ``trimap``)."""
        return obfuscate_face(
            image,
            facemask,
            self.method,
            alpha=alpha,
            trimap=trimap,
            blur_sigma=self.blur_sigma,
            mosaic_block=self.mosaic_block,
            band_kernel=self.band_kernel,
            opaque_alpha=self.opaque_alpha,
        )


# --- helpers ----------------------------------------------------------------------------------------


def _check_params(
    method: str, blur_sigma: float, mosaic_block: float, band_kernel: int, opaque_alpha: int
) -> None:
    if method not in METHODS:
        raise SettingError(
            f"unknown obfuscation method {method!r}; use one of {', '.join(METHODS)} (key: method)"
        )
    if not blur_sigma >= 0:
        raise SettingError(f"blur_sigma is a fraction of the face size and must be >= 0, got {blur_sigma}")
    if not mosaic_block > 0:
        raise SettingError(f"mosaic_block is a fraction of the face size and must be > 0, got {mosaic_block}")
    if int(band_kernel) != band_kernel or band_kernel < 1:
        raise SettingError(f"band_kernel must be a positive integer, got {band_kernel}")
    if not 1 <= opaque_alpha <= 255:
        raise SettingError(f"opaque_alpha is on the 0..255 scale and must be in [1, 255], got {opaque_alpha}")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be an (H, W, 3) uint8 array, got {got}")


def _as_2d(array: np.ndarray, name: str, hw: tuple[int, int] | None) -> np.ndarray:
    """``array`` as ``(H, W)``, accepting a trailing singleton channel; checks the size against ``hw``."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != 2:
        raise ValueError(f"{name} must be (H, W) or (H, W, 1), got shape {array.shape}")
    if hw is not None and array.shape != tuple(hw):
        raise ValueError(f"{name} has size {array.shape} but the image is {tuple(hw)}; resize them together")
    return array


def _band_in_box(
    alpha: np.ndarray, box: tuple[int, int, int, int], kernel_size: int, opaque_alpha: int
) -> np.ndarray:
    """The transition band of ``alpha`` restricted to ``box``, computed on the box plus the kernel radius.

    Morphology at a pixel only reads pixels within the kernel radius, so padding the box by it gives
    exactly the full-image band inside the box; where the padded window meets the image border, the
    border rule (never erodes, never dilates) is the same in both cases.
    """
    if int(kernel_size) != kernel_size or kernel_size < 1:
        raise ValueError(f"band_kernel must be a positive integer, got {kernel_size}")
    y0, y1, x0, x1 = box
    pad = int(kernel_size)  # >= the kernel's reach on either side of its anchor
    wy0, wx0 = max(0, y0 - pad), max(0, x0 - pad)
    wy1, wx1 = min(alpha.shape[0], y1 + pad), min(alpha.shape[1], x1 + pad)
    window = alpha[wy0:wy1, wx0:wx1]
    opaque = _opaque_value(alpha, opaque_alpha)
    if opaque < 2 and window.size and window.max() > 1.0 + 1e-3:
        raise ValueError("a float alpha must be in 0..1 (got values > 1): divide a 0..255 alpha by 255")
    band = trimap_unknown(window > 0, window >= opaque, int(kernel_size))
    return band[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]


def _opaque_value(alpha: np.ndarray, opaque_alpha: int) -> float:
    """``opaque_alpha`` (0..255 scale) in the units of ``alpha``: uint8 0..255 or float 0..1."""
    if alpha.dtype == np.uint8:
        return opaque_alpha
    if np.issubdtype(alpha.dtype, np.floating):
        return opaque_alpha / 255.0 - 1e-6  # float32 alphas read as v / 255 must still reach it
    raise ValueError(f"alpha must be uint8 (0..255) or float (0..1), got {alpha.dtype}")


def _box_widths(sigma: float, passes: int) -> list[int]:
    """Odd box widths whose ``passes`` successive filters best match a Gaussian of ``sigma``."""
    ideal = math.sqrt(12.0 * sigma * sigma / passes + 1.0)
    lower = math.floor(ideal)
    if lower % 2 == 0:
        lower -= 1
    lower = max(lower, 1)
    upper = lower + 2
    # How many passes use the lower width so that the summed variance (w^2 - 1) / 12 is closest.
    n_lower = round(
        (12.0 * sigma * sigma - passes * lower * lower - 4 * passes * lower - 3 * passes) / (-4 * lower - 4)
    )
    n_lower = min(max(n_lower, 0), passes)
    return [lower] * n_lower + [upper] * (passes - n_lower)
