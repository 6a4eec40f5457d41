"""Training samples of binary masks in binary-label mode: the trimap's band from the mask, scaled.

A binary mask is right away from its boundary and wrong, by an unknown amount, near it. For such a
sample the training trimap's unknown region is the mask's transition band: the official trimap rule
(:mod:`p3m.data.trimap`) with the kernel scaled to the image (:func:`p3m.data.labels.band_kernel_for`),
so the crops are anchored on it, the segmentation branch learns it as the transition class, and the
local decoder's terms cover it. The band is never narrower than the trimaps of soft samples (the
augmentation's ``kernel_range``, in pixels of the image whatever its size): on small images the
scaled band is a few pixels, and training the segmentation branch on it taught a far narrower
transition class than the starting network's, which HYBRID then trusted (docs/performance.md,
"Fine-tuning on binary masks"). With
``mark_known`` every item also carries ``alpha_known`` (1, S, S): 0 inside the band of a binary
sample (any trimap value other than 0 and 255, i.e. the band after resizing), 1 elsewhere and for
soft samples; :class:`~p3m.models.losses.P3MLoss` supervises no alpha (nor composition) where it is 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import Dataset

from p3m.data.datasets import P3M10kTrainDataset, TrainTransform
from p3m.data.layout import TrainFiles
from p3m.utils.conventions import TRIMAP_BACKGROUND, TRIMAP_FOREGROUND


class BandLabelDataset(Dataset):
    """A training dataset whose binary samples train in binary-label mode (see the module docstring).

    Args:
        inner: the training dataset (its files, reading, augmentation pipeline and privacy hook).
        band_kernels: per sample, the band's kernel size for a binary label, or None for a soft one.
        mark_known: add ``alpha_known`` to every item (``band_labels=ignore``).
    """

    def __init__(
        self, inner: P3M10kTrainDataset, band_kernels: Sequence[int | None], mark_known: bool
    ) -> None:
        if len(band_kernels) != len(inner):
            raise ValueError(f"{len(band_kernels)} band kernels for {len(inner)} training samples")
        self.inner = inner
        self.band_kernels = tuple(band_kernels)
        self.mark_known = mark_known
        self._pipelines: dict[int, TrainTransform] = {}

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def files(self) -> tuple[TrainFiles, ...]:
        """The samples' files (the inner dataset's)."""
        return self.inner.files

    @property
    def read_dirs(self) -> tuple[Path, ...]:
        """Every folder read, for the privacy audit (the inner dataset's)."""
        return self.inner.read_dirs

    @property
    def privacy_mode(self) -> str:
        """The privacy mode the files were chosen for."""
        return self.inner.privacy_mode

    def reseed(self, seed: int) -> None:
        """Restart the random streams (the DataLoader workers' init function calls it)."""
        self.inner.reseed(seed)

    def pipeline(self, kernel_size: int) -> TrainTransform:
        """The augmentation pipeline whose trimap kernels are at least ``kernel_size`` (see the module
        docstring): ``kernel_range`` ``(low, high)`` becomes ``(max(low, k), max(high, k))``."""
        if kernel_size not in self._pipelines:
            transform: Any = self.inner.transform
            if not dataclasses.is_dataclass(transform) or not hasattr(transform, "kernel_range"):
                raise TypeError(
                    "binary-label training sets the trimap kernel of the augmentation, and "
                    f"{type(transform).__name__} has no kernel_range (use augmentation=paper, ijcv, strong "
                    "or none)"
                )
            low, high = transform.kernel_range
            self._pipelines[kernel_size] = dataclasses.replace(
                cast(Any, transform), kernel_range=(max(low, kernel_size), max(high, kernel_size))
            )
        return self._pipelines[kernel_size]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        inner, kernel = self.inner, self.band_kernels[index]
        pipeline = inner.transform if kernel is None else self.pipeline(kernel)
        sample = inner.load(index)
        if inner.privacy_hook is None:
            item = pipeline(sample, inner.rng)
        else:
            item = inner.privacy_hook(sample, pipeline, inner.rng, inner.privacy_rng)
        if self.mark_known:
            trimap = item["trimap"]
            known = (trimap == TRIMAP_BACKGROUND) | (trimap == TRIMAP_FOREGROUND)
            item["alpha_known"] = known.float() if kernel is not None else torch.ones_like(trimap)
        return item
