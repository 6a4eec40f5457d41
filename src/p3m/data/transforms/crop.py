"""The official training pipelines: random crop around the transition region, flip, resize.

``PaperTransform`` (augmentation=paper) reproduces the ACM MM 2021 code (``MattingDataset`` and
``MattingTransform`` in the official ``core/data.py``):

1. trimap kernel ``k`` drawn uniformly from 15..30 (inclusive);
2. crop side ``c`` drawn from {512, 768, 1024}, replaced by the smallest (512) unless ``c < min(H, W)``;
3. with probability 0.5 the crop's top-left corner is a uniformly drawn unknown (128) pixel of
   ``trimap[:H - c, :W - c]``, else (or if there is none) any pixel of that region;
4. horizontal flip with probability 0.5;
5. every map resized to 512 x 512 with ``cv2.INTER_LINEAR``; the trimap is not re-quantised;
6. image, fg, bg ImageNet-normalised; alpha divided by 255 (the official code keeps 0..255).

``IJCVTransform`` (augmentation=ijcv) is the IJCV 2023 variant: the drawn pixel (from the whole
image) is the crop's centre, clamped so the crop stays inside, and the resized trimap is
re-quantised (> 180 -> 255, < 50 -> 0, else 128).

Random choices are drawn by :meth:`PaperTransform.draw` into a :class:`CropChoices`;
:meth:`PaperTransform.apply` is deterministic given them, so tests can fix them and compare with the
official steps.

Speed, and what is exact (tests/data/test_transforms.py checks each claim):

- files are decoded by OpenCV (:mod:`p3m.data.io`): the same libjpeg-turbo / libpng output as
  PIL's for these files (checked on the real samples; another JPEG decoder build could differ by
  rounding), and faster (``bench/bench_data.py``);
- the trimap is computed only on the crop plus the kernel's reach, clipped at the image borders
  (:func:`p3m.data.trimap.trimap_window`), with bit-packed morphology: bit-identical to cropping
  the full-size trimap;
- the anchor is drawn by rejection sampling on exact per-pixel trimap values
  (:func:`p3m.data.trimap.sample_transition_pixel`): the same distribution as the official
  ``np.where(trimap_crop == 128)`` draw, without building the full-size trimap;
- crop, flip and resize are the official OpenCV calls on views of the decoded maps (no
  full-resolution copy): identical by construction, except that the flip runs after the resize, on
  the smaller output, where that is bit-exact (:func:`flip_commutes_with_resize`: every crop size
  for the 512 px output);
- normalisation by lookup table (``cv2.LUT`` into the channel planes): bit-identical to the official
  float32 ``Normalize``.

With the packed training format (:mod:`p3m.data.packed`) the maps are memory-mapped arrays, so only
the crop's rows (plus the trimap kernel's reach) are ever read; the anchor draw reads the alpha at the
drawn pixels and checks the anchor region's min/max.

So for the same choices the output equals the official sample bit for bit; the random stream
differs (one ``numpy.random.Generator`` instead of ``random`` + ``np.random``), not the
distribution.

Images whose short side is not larger than the smallest crop (the official code fails on them) are
first enlarged, keeping the aspect ratio, to a short side of ``min(crop_sizes) + 1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import torch

from p3m.data.transforms.base import (
    as_int_tuple,
    check_kernel_range,
    check_out_size,
    check_probability,
    check_sample,
    resize_maps,
    to_batch_item,
    upscale_short_side,
)
from p3m.data.trimap import sample_transition_pixel, trimap_window
from p3m.utils.conventions import TRIMAP_BACKGROUND, TRIMAP_FOREGROUND, TRIMAP_UNKNOWN

REQUANTIZE_HIGH = 180  # IJCV: resized trimap values above this become foreground (255)
REQUANTIZE_LOW = 50  # IJCV: values below this become background (0); the rest unknown (128)


def flip_commutes_with_resize(size: int, out_size: int) -> bool:
    """Whether flipping after ``cv2.resize(INTER_LINEAR)`` from ``size`` to ``out_size`` is bit-exact.

    Output column ``x`` samples the input at ``(x + 0.5) * size / out_size - 0.5``; its mirror column
    samples the mirrored position, with fractional part ``1 - f`` for ``f``. OpenCV's uint8 bilinear
    resize rounds each weight to 8 fractional bits, and rounding ``f`` and ``1 - f`` can break the
    mirror symmetry by one step, unless every ``f`` is a multiple of 1/256: then no weight is rounded
    and the flipped resize is the resize of the flipped crop, bit for bit. The positions are
    multiples of ``1 / (2 * out_size)``, so that holds when ``2 * out_size`` divides ``256 * size``
    (every crop size for a power-of-two output such as 512; the 2x case is OpenCV's exact area path).
    """
    return (256 * size) % (2 * out_size) == 0


@dataclass(frozen=True)
class CropChoices:
    """Every random choice of one training sample; fix them to make the pipeline deterministic.

    Attributes:
        crop_size: side of the square crop, in pixels of the (possibly enlarged) image.
        top: row of the crop's top-left corner.
        left: column of the crop's top-left corner.
        flip: mirror horizontally.
        kernel_size: trimap ellipse size.
    """

    crop_size: int
    top: int
    left: int
    flip: bool
    kernel_size: int


def requantize_trimap(trimap: np.ndarray) -> np.ndarray:
    """Map a bilinearly resized trimap back to 0/128/255 with the IJCV thresholds."""
    out = np.full_like(trimap, TRIMAP_UNKNOWN)
    out[trimap > REQUANTIZE_HIGH] = TRIMAP_FOREGROUND
    out[trimap < REQUANTIZE_LOW] = TRIMAP_BACKGROUND
    return out


@dataclass
class PaperTransform:
    """augmentation=paper: the ACM MM 2021 training pipeline (see the module docstring).

    Args:
        crop_sizes: crop sides to draw from; the smallest is also the fallback for small images.
        out_size: side of the training sample (multiple of 32).
        kernel_range: inclusive [low, high] range of the trimap ellipse size.
        transition_prob: probability of anchoring the crop on an unknown (128) trimap pixel.
        flip_prob: probability of a horizontal flip.
    """

    crop_sizes: Sequence[int] = (512, 768, 1024)
    out_size: int = 512
    kernel_range: Sequence[int] = (15, 30)
    transition_prob: float = 0.5
    flip_prob: float = 0.5

    anchor: ClassVar[str] = "top_left"  # the drawn pixel is the crop's top-left corner
    requantize: ClassVar[bool] = False  # keep the bilinearly resized trimap as it is

    def __post_init__(self) -> None:
        self.crop_sizes = as_int_tuple(self.crop_sizes, "crop_sizes", minimum=32)
        self.out_size = check_out_size(self.out_size)
        self.kernel_range = check_kernel_range(self.kernel_range)
        self.transition_prob = check_probability(self.transition_prob, "transition_prob")
        self.flip_prob = check_probability(self.flip_prob, "flip_prob")

    @property
    def fallback_crop(self) -> int:
        """The crop used when a drawn one does not fit (the official 512)."""
        return min(self.crop_sizes)

    def with_geometry(self, crop_sizes: Sequence[int] | None = None, out_size: int | None = None) -> Any:
        """A copy with other crop sizes and/or output size (the data config sets them per dataset)."""
        changes: dict[str, Any] = {}
        if crop_sizes is not None:
            changes["crop_sizes"] = crop_sizes
        if out_size is not None:
            changes["out_size"] = out_size
        return dataclasses.replace(self, **changes)

    def prepare(self, sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check the sample and enlarge it if its short side cannot fit the fallback crop."""
        check_sample(sample)
        return upscale_short_side(sample, self.fallback_crop + 1)

    def crop_size_for(self, drawn: int, height: int, width: int) -> int:
        """The official rule: the drawn size if it is smaller than the short side, else the fallback."""
        return drawn if drawn < min(height, width) else self.fallback_crop

    def draw(self, alpha: np.ndarray, rng: np.random.Generator) -> CropChoices:
        """Draw the random choices for a prepared sample with this alpha matte."""
        height, width = alpha.shape
        kernel_size = int(rng.integers(self.kernel_range[0], self.kernel_range[1] + 1))
        crop = self.crop_size_for(self.crop_sizes[int(rng.integers(len(self.crop_sizes)))], height, width)
        region = (height - crop, width - crop) if self.anchor == "top_left" else (height, width)
        pixel = None
        if rng.random() < self.transition_prob:
            pixel = sample_transition_pixel(alpha, kernel_size, region[0], region[1], rng)
        if pixel is None:
            pixel = (int(rng.integers(max(region[0], 1))), int(rng.integers(max(region[1], 1))))
        flip = bool(rng.random() < self.flip_prob)
        top, left = pixel
        if self.anchor == "centre":
            top = int(np.clip(top - crop // 2, 0, height - crop))
            left = int(np.clip(left - crop // 2, 0, width - crop))
        return CropChoices(crop_size=crop, top=top, left=left, flip=flip, kernel_size=kernel_size)

    def crop_resize(self, sample: Mapping[str, np.ndarray], choices: CropChoices) -> dict[str, np.ndarray]:
        """Crop, flip and resize every map of a prepared sample; uint8 maps including ``trimap``."""
        alpha = sample["alpha"]
        height, width = alpha.shape
        c, top, left = choices.crop_size, choices.top, choices.left
        if c < 1 or top < 0 or left < 0 or top + c > height or left + c > width:
            raise ValueError(
                f"crop {choices} does not fit the {height}x{width} sample (call prepare() first)"
            )
        # The official steps exactly: crop (a view), cv2.flip, cv2.resize, per map. OpenCV reads the
        # crop views in place, so nothing at full resolution is copied.
        trimap = trimap_window(alpha, choices.kernel_size, top, left, c, c)
        crops: dict[str, np.ndarray] = {"image": sample["image"], "alpha": alpha}
        crops.update({k: sample[k] for k in ("fg", "bg", "facemask") if k in sample})
        crops = {k: v[top : top + c, left : left + c] for k, v in crops.items()}
        crops["trimap"] = trimap
        flip_after = choices.flip and flip_commutes_with_resize(c, self.out_size)
        if choices.flip and not flip_after:
            crops = {k: cv2.flip(v, 1) for k, v in crops.items()}
        maps = resize_maps(crops, self.out_size)
        if flip_after:  # the same pixels, flipped at the output size instead of the crop's
            maps = {k: cv2.flip(v, 1) for k, v in maps.items()}
        if self.requantize:
            maps["trimap"] = requantize_trimap(maps["trimap"])
        return maps

    def apply(self, sample: Mapping[str, np.ndarray], choices: CropChoices) -> dict[str, torch.Tensor]:
        """The training item for fixed choices (deterministic)."""
        return to_batch_item(self.crop_resize(sample, choices))

    def __call__(self, sample: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Prepare, draw the random choices, and build the training item."""
        prepared = self.prepare(sample)
        return self.apply(prepared, self.draw(prepared["alpha"], rng))


@dataclass
class IJCVTransform(PaperTransform):
    """augmentation=ijcv: the drawn pixel is the crop's centre and the resized trimap is re-quantised.

    The IJCV repository publishes no training code; this follows the paper's description as the
    project specifies it. Arguments as :class:`PaperTransform`.
    """

    anchor: ClassVar[str] = "centre"
    requantize: ClassVar[bool] = True
