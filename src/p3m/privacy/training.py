"""The steps the privacy modes (:mod:`p3m.privacy.modes`) add to a training sample.

A step is a *privacy hook* ``hook(sample, pipeline, rng, privacy_rng) -> batch item`` that the
training dataset calls instead of ``pipeline(sample, rng)``. It draws its own random choices from
``privacy_rng``, a stream separate from the augmentation's, so a sample's crop and flip do not
depend on the privacy mode.

The transition band's kernel (``band_kernel``) is in pixels; ``null`` scales the official 25 px at a
1080 px short side to the sample's size (at least 3, odd), as the synthetic trimaps do.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from p3m.privacy.copy_paste import FaceAugment, paste_face
from p3m.privacy.faces import PublicFaces
from p3m.privacy.obfuscate import DEFAULT_OPAQUE_ALPHA, FaceObfuscator, obfuscation_region
from p3m.utils.conventions import bounding_box, kernel_for_size

CP_LEVELS = ("image", "feature")


def band_kernel_for(height: int, width: int, band_kernel: int | None = None) -> int:
    """``band_kernel`` if set, else 25 px scaled from a 1080 px short side (odd, at least 3)."""
    if band_kernel is not None:
        return int(band_kernel)
    return kernel_for_size(height, width)


def face_region(
    facemask: np.ndarray,
    alpha: np.ndarray,
    band_kernel: int | None = None,
    opaque_alpha: int = DEFAULT_OPAQUE_ALPHA,
) -> np.ndarray:
    """The face mask minus the alpha's transition band (the pixels P3M-10k anonymizes), bool (H, W).

    Computed on the face's bounding box padded by the kernel, which gives the full-image result
    (morphology reads only pixels within the kernel's reach) at a cost independent of the image size.
    """
    height, width = alpha.shape[:2]
    kernel = band_kernel_for(height, width, band_kernel)
    out = np.zeros((height, width), bool)
    box = bounding_box(facemask > 0)
    if box is None:
        return out
    y0, y1 = max(0, box[0] - kernel), min(height, box[1] + kernel)
    x0, x1 = max(0, box[2] - kernel), min(width, box[3] + kernel)
    out[y0:y1, x0:x1] = obfuscation_region(
        facemask[y0:y1, x0:x1],
        alpha=alpha[y0:y1, x0:x1],
        band_kernel=kernel,
        opaque_alpha=opaque_alpha,
    )
    return out


@dataclass(frozen=True)
class ObfuscateHook:
    """privacy=obfuscate: obfuscate the face of the original image (and its fg), then augment.

    Attributes:
        obfuscator: method and strengths; its ``band_kernel`` is replaced per sample when
            ``band_kernel`` is None.
        band_kernel: transition band kernel in pixels, or None to scale it to the sample.
    """

    obfuscator: FaceObfuscator
    band_kernel: int | None = None

    def obfuscate(self, sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The sample with ``image`` (and ``fg``) obfuscated inside the face region."""
        if "facemask" not in sample:
            raise KeyError("privacy=obfuscate needs the face mask of every training sample (train/facemask)")
        alpha, facemask = sample["alpha"], sample["facemask"]
        height, width = alpha.shape[:2]
        kernel = band_kernel_for(height, width, self.band_kernel)
        obfuscator = dataclasses.replace(self.obfuscator, band_kernel=kernel)
        out = dict(sample)
        out["image"] = obfuscator(sample["image"], facemask, alpha=alpha)
        if "fg" in sample:
            # Where the face is obfuscated alpha is 1, so the foreground is the (obfuscated) image.
            region = face_region(facemask, alpha, kernel, obfuscator.opaque_alpha)
            out["fg"] = np.where(region[..., None], out["image"], sample["fg"])
        return out

    def __call__(
        self,
        sample: dict[str, np.ndarray],
        transform: Any,
        rng: np.random.Generator,
        privacy_rng: np.random.Generator,
    ) -> dict[str, torch.Tensor]:
        """Obfuscate, then run the augmentation pipeline."""
        return transform(self.obfuscate(sample), rng)


@dataclass
class CopyPasteHook:
    """privacy=cp: paste a public face over the blurred face (ICP) or prepare the FCP inputs.

    Attributes:
        faces: the public source faces.
        level: ``image`` (ICP) or ``feature`` (FCP).
        prob: probability that a sample gets a pasted face.
        augment: the source face's random changes.
        band_kernel: transition band kernel in pixels, or None to scale it to the sample.
        opaque_alpha: alpha (0..255) from which a pixel is definite foreground for the band.
    """

    faces: PublicFaces
    level: str = "image"
    prob: float = 0.5
    augment: FaceAugment = dataclasses.field(default_factory=FaceAugment)
    band_kernel: int | None = None
    opaque_alpha: int = DEFAULT_OPAQUE_ALPHA

    def __post_init__(self) -> None:
        if self.level not in CP_LEVELS:
            raise ValueError(f"privacy.level={self.level!r} is unknown; choose image (ICP) or feature (FCP)")
        if isinstance(self.prob, bool) or not 0.0 <= float(self.prob) <= 1.0:
            raise ValueError(f"privacy.prob must be a probability in [0, 1], got {self.prob!r}")

    def paste(self, sample: Mapping[str, np.ndarray], privacy_rng: np.random.Generator) -> Any:
        """Draw whether and what to paste; a :class:`~p3m.privacy.copy_paste.PastedFace` or None."""
        if "facemask" not in sample:
            raise KeyError("privacy=cp needs the face mask of every training sample (train/facemask)")
        if privacy_rng.random() >= self.prob:
            return None
        region = face_region(sample["facemask"], sample["alpha"], self.band_kernel, self.opaque_alpha)
        if not region.any():  # no face (e.g. a back view)
            return None
        face = self.faces.load(int(privacy_rng.integers(len(self.faces))))
        return paste_face(region, face.image, face.mask, privacy_rng, self.augment)

    def __call__(
        self,
        sample: dict[str, np.ndarray],
        transform: Any,
        rng: np.random.Generator,
        privacy_rng: np.random.Generator,
    ) -> dict[str, torch.Tensor]:
        """Paste (or not), then augment; FCP items also get ``cp_source`` and ``cp_mask``."""
        pasted = self.paste(sample, privacy_rng)
        if self.level == "image":
            if pasted is not None:
                sample = {**sample, **{k: pasted.apply(sample[k]) for k in ("image", "fg") if k in sample}}
            return transform(sample, rng)
        # FCP: the pasted image and the paste mask take the target's exact crop, flip and resize:
        # the pipeline runs again with a copy of the generator in the state the target pass started from.
        twin = copy.deepcopy(rng)
        item = transform(sample, rng)
        if pasted is None:
            item["cp_source"] = item["image"]
            item["cp_mask"] = torch.zeros_like(item["alpha"])
        else:
            source_sample = {
                **sample,
                "image": pasted.apply(sample["image"]),
                "facemask": pasted.full_mask(sample["alpha"].shape),
            }
            source = transform(source_sample, twin)
            item["cp_source"] = source["image"]
            item["cp_mask"] = source["facemask"]
        return item
