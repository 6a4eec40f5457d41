"""augmentation=none: the whole image resized to the training size, no random crop or flip.

For debugging and for overfitting a handful of images: the same image always gives the same sample
(with a fixed trimap kernel, the default here). The trimap is made from the full-resolution alpha
with the official rule, then resized like the other maps (bilinear, not re-quantised). The aspect
ratio is not kept: every sample becomes ``out_size`` x ``out_size`` so that samples batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from p3m.data.transforms.base import (
    check_kernel_range,
    check_out_size,
    check_sample,
    resize_maps,
    to_batch_item,
)
from p3m.data.trimap import trimap_from_alpha


@dataclass
class ResizeTransform:
    """Resize every map to ``out_size`` x ``out_size``.

    Args:
        out_size: side of the training sample (multiple of 32).
        kernel_range: inclusive [low, high] range of the trimap ellipse size; equal bounds (the
            default, 25 as in the sample trimaps) make the pipeline deterministic.
    """

    out_size: int = 512
    kernel_range: Sequence[int] = (25, 25)

    def __post_init__(self) -> None:
        self.out_size = check_out_size(self.out_size)
        self.kernel_range = check_kernel_range(self.kernel_range)

    def with_geometry(self, crop_sizes: Sequence[int] | None = None, out_size: int | None = None) -> Any:
        """A copy with another output size (there is no crop, so ``crop_sizes`` is ignored)."""
        return self if out_size is None else dataclasses.replace(self, out_size=out_size)

    def apply(self, sample: Mapping[str, np.ndarray], kernel_size: int) -> dict[str, torch.Tensor]:
        """The training item for a fixed trimap kernel (deterministic)."""
        check_sample(sample)
        ordered: dict[str, np.ndarray] = {"image": sample["image"], "alpha": sample["alpha"]}
        if "fg" in sample:
            ordered["fg"] = sample["fg"]
        ordered["trimap"] = trimap_from_alpha(sample["alpha"], kernel_size)
        if "bg" in sample:
            ordered["bg"] = sample["bg"]
        if "facemask" in sample:
            ordered["facemask"] = sample["facemask"]
        return to_batch_item(resize_maps(ordered, self.out_size))

    def __call__(self, sample: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Draw the trimap kernel and build the training item."""
        kernel_size = int(rng.integers(self.kernel_range[0], self.kernel_range[1] + 1))
        return self.apply(sample, kernel_size)
