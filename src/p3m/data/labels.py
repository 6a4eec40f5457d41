"""Soft alpha mattes or binary masks: telling them apart, and what a binary mask can teach.

Most people's portrait labels come from a segmentation tool: a mask with two values (0/255, or 0/1),
perhaps with anti-aliased or JPEG-noisy edges, not an alpha matte. Trained on as if it were a matte,
such a mask teaches the network that hair ends in a hard edge. A binary label is still right away
from its boundary, so binary-label training (``data.labels=binary``, :mod:`p3m.data.folder`) keeps
the mask outside a *transition band* around the boundary and, inside it, either supervises no alpha
at all (``band_labels=ignore``) or uses the starting network's own matte there, fixed
(``band_labels=pseudo``, :func:`pseudo_labelled`).

A label is *binary* when it is (nearly) two-valued: it has fewer pixels between its two levels than
pixels of boundary length (:attr:`LabelStats.binary`). Anti-aliasing puts about one such pixel on
every boundary pixel's row or column and JPEG noise far fewer, while a matte's soft hair puts
several; a mask feathered by a blur counts as soft (``data.labels=binary`` overrides the detection).
The band is the official trimap's unknown region of the binary mask, with an elliptic kernel of
``band_kernel`` px at a 1080 px short side, scaled to the image (:func:`band_kernel_for`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from p3m.data.trimap import trimap_from_alpha
from p3m.utils.conventions import TRIMAP_UNKNOWN, kernel_for_size

LABEL_MODES = ("auto", "soft", "binary")  # data.labels: detect per file, or treat every label as one kind
# data.band_labels: what supervises alpha inside a binary mask's band (auto: pseudo given a starting network)
BAND_LABELS = ("auto", "ignore", "pseudo")
SOFT, BINARY = "soft", "binary"  # the kind of one label
# Pixels nearer than this fraction of the level range to a level count as that level (JPEG noise).
LEVEL_TOLERANCE = 0.05
# A label is binary below this many between-level pixels per pixel of boundary length.
BINARY_RATIO = 1.0


@dataclass(frozen=True)
class LabelStats:
    """How two-valued a label is.

    Attributes:
        low, high: its darkest and brightest value (0 and 255, or 0 and 1 for a 0/1 mask).
        between: pixels more than ``LEVEL_TOLERANCE`` of the range away from both levels.
        boundary: pixel edges (4-neighbours) across the midpoint between the levels: the boundary length.
    """

    low: int
    high: int
    between: int
    boundary: int

    @property
    def ratio(self) -> float:
        """Between-level pixels per pixel of boundary length (0 for a label with no boundary)."""
        return self.between / self.boundary if self.boundary else 0.0

    @property
    def binary(self) -> bool:
        """True for a (nearly) two-valued label, with anti-aliased or noisy edges at most and no soft band."""
        return self.ratio < BINARY_RATIO


def label_stats(label: np.ndarray) -> LabelStats:
    """Measure an (H, W) uint8 label (see :class:`LabelStats`)."""
    if label.dtype != np.uint8 or label.ndim != 2:
        raise ValueError(f"label_stats expects an (H, W) uint8 label, got {label.shape} {label.dtype}")
    low, high = int(label.min()), int(label.max())
    tolerance = LEVEL_TOLERANCE * (high - low)
    between = int(np.count_nonzero((label > low + tolerance) & (label < high - tolerance)))
    upper = threshold(label, low, high)
    boundary = int(
        np.count_nonzero(upper[1:] != upper[:-1]) + np.count_nonzero(upper[:, 1:] != upper[:, :-1])
    )
    return LabelStats(low=low, high=high, between=between, boundary=boundary)


def threshold(label: np.ndarray, low: int, high: int) -> np.ndarray:
    """(H, W) bool: the pixels at or above the midpoint of the two levels (all False for a flat label
    whose only value is 0, all True for another flat one)."""
    if high == low:
        return np.full(label.shape, high > 0)
    return label.astype(np.uint16) * 2 >= low + high


def binarize(label: np.ndarray, low: int, high: int) -> np.ndarray:
    """The binary mask of a two-valued label as 0/255 uint8 (0/1 masks and noisy edges included)."""
    return threshold(label, low, high).astype(np.uint8) * np.uint8(255)


def resolve_band_labels(choice: str, init_from: str | None) -> str:
    """``data.band_labels``: ``auto`` is ``pseudo`` when fine-tuning from a starting network (it was
    the better of the two on average in docs/performance.md, "Fine-tuning on binary masks"), else
    ``ignore`` (nothing to make pseudo-labels with)."""
    if choice != "auto":
        return choice
    return "pseudo" if init_from else "ignore"


def band_kernel_for(height: int, width: int, at_1080: int) -> int:
    """The band's elliptic kernel for an image of this size: ``at_1080`` px at a 1080 px short side."""
    return kernel_for_size(height, width, at_1080=at_1080)


def transition_band(mask: np.ndarray, kernel_size: int) -> np.ndarray:
    """(H, W) bool: the official trimap's unknown region of a 0/255 mask, i.e. the pixels within about
    ``kernel_size / 2`` of its boundary."""
    return trimap_from_alpha(mask, kernel_size) == TRIMAP_UNKNOWN


def pseudo_labelled(mask: np.ndarray, kernel_size: int, matte: np.ndarray) -> np.ndarray:
    """A 0/255 mask with its transition band replaced by ``matte`` (uint8, the starting network's)."""
    if matte.shape != mask.shape or matte.dtype != np.uint8:
        raise ValueError(f"pseudo-label matte is {matte.shape} {matte.dtype}; expected {mask.shape} uint8")
    return np.where(transition_band(mask, kernel_size), matte, mask)
