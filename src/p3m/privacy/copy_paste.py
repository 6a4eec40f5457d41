"""P3M-CP: paste a public face over a training image's blurred face, in pixels (ICP) or features (FCP).

P3M-10k's training faces are blurred, so a network trained on them never sees a real face; P3M-CP
(Li et al., ACM MM 2021; Ma et al., IJCV 2023) borrows faces from a public face-parsing set
(CelebAMask-HQ) and pastes them over the blurred face during training only. The ground-truth alpha,
the losses and inference are unchanged.

Procedure (one target sample, probability ``prob``, at the sample's full resolution, before the
augmentation pipeline; :func:`paste_face`):

1. the *paste region* is the target's face mask minus the alpha transition band: exactly the pixels
   the P3M-10k procedure blurs (face area minus the trimap's unknown region), so the image stays
   consistent with the alpha at the portrait's outline;
2. a random public face is augmented: horizontal flip (``flip_prob``), rotation (uniform in
   ``[-rotation, rotation]`` degrees), scale (uniform in ``scale``) and colour (brightness,
   contrast, saturation, each within ``1 +- colour``);
3. it is aligned to the region: the centre of its (flipped, rotated) face mask's bounding box goes to
   the centre of the region's bounding box, and it is scaled so that its face box covers the region's
   box (times the drawn scale), so no blurred pixel is left where the source face reaches; one
   affine warp does flip, rotation, scale and shift (area pre-shrinking avoids aliasing);
4. pixels are replaced where the region and the warped source face mask overlap (hard mask).

- **ICP** (``level=image``): the pasted image replaces the training image; the foreground (for the
  composition loss) gets the same pixels, since alpha is 1 there.
- **FCP** (``level=feature``): the image stays the blurred one; the pasted image (``cp_source``) and
  the paste mask (``cp_mask``) go through the same crop/flip/resize, and the network merges the two
  encoder passes after ``stage`` encoder stages (``P3MNet.forward_feature_paste``, with the model-side
  choices in :mod:`p3m.models.components.feature_paste`).

FCP's source pass runs on the *pasted image* (target context around the source face), so features
inside the face come from a real face seen in the target's surroundings, and the two passes differ
only through the face pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from p3m.utils.conventions import bounding_box

_GREY = np.array([0.299, 0.587, 0.114], np.float32)  # luma weights for the saturation change
_MAX_POINTS = 4096  # face-mask points used to measure the rotated face box


@dataclass(frozen=True)
class FaceAugment:
    """Random changes to a source face before it is pasted.

    Attributes:
        flip_prob: probability of a horizontal flip.
        rotation: maximum rotation in degrees (uniform in ``[-rotation, rotation]``).
        scale: ``(low, high)`` factor on top of the size that covers the target face.
        colour: brightness, contrast and saturation factors are drawn in ``[1 - colour, 1 + colour]``.
    """

    flip_prob: float = 0.5
    rotation: float = 15.0
    scale: tuple[float, float] = (1.0, 1.2)
    colour: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"privacy.flip_prob must be a probability in [0, 1], got {self.flip_prob}")
        if not 0.0 <= self.rotation <= 180.0:
            raise ValueError(f"privacy.rotation is in degrees and must be in [0, 180], got {self.rotation}")
        scale = tuple(float(v) for v in self.scale)
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1]:
            raise ValueError(
                f"privacy.scale must be [low, high] with 0 < low <= high, got {list(self.scale)}"
            )
        object.__setattr__(self, "scale", scale)
        if not 0.0 <= self.colour < 1.0:
            raise ValueError(f"privacy.colour must be in [0, 1), got {self.colour}")


@dataclass(frozen=True)
class PastedFace:
    """A source face warped into a target's face box.

    Attributes:
        box: ``(y0, y1, x0, x1)`` of the target region's bounding box (end-exclusive).
        patch: ``(y1 - y0, x1 - x0, 3)`` uint8 warped, colour-changed source pixels.
        mask: ``(y1 - y0, x1 - x0)`` bool, where the patch replaces the target's pixels.
    """

    box: tuple[int, int, int, int]
    patch: np.ndarray
    mask: np.ndarray

    def apply(self, image: np.ndarray) -> np.ndarray:
        """A copy of ``image`` (H, W, 3) with the patch pasted in."""
        y0, y1, x0, x1 = self.box
        out = image.copy()
        out[y0:y1, x0:x1][self.mask] = self.patch[self.mask]
        return out

    def full_mask(self, shape: Sequence[int]) -> np.ndarray:
        """The paste mask as a full ``(H, W)`` uint8 0/255 image."""
        y0, y1, x0, x1 = self.box
        out = np.zeros(tuple(shape[:2]), np.uint8)
        out[y0:y1, x0:x1][self.mask] = 255
        return out


def paste_face(
    region: np.ndarray,
    source_image: np.ndarray,
    source_mask: np.ndarray,
    rng: np.random.Generator,
    augment: FaceAugment | None = None,
) -> PastedFace | None:
    """Augment a source face and align it to the target region (see the module docstring).

    Args:
        region: ``(H, W)`` bool, where the target's face may be replaced (face mask minus band).
        source_image: ``(h, w, 3)`` uint8 RGB public face.
        source_mask: ``(h, w)`` bool face mask of ``source_image``.
        rng: every random choice is drawn from it.
        augment: the random changes; defaults to :class:`FaceAugment`'s.

    Returns:
        The warped face inside the region's box, or None when the region or the source mask is empty.
    """
    augment = augment or FaceAugment()
    if source_image.ndim != 3 or source_image.shape[:2] != source_mask.shape:
        raise ValueError(
            f"source face image {source_image.shape} and mask {source_mask.shape} must have the same (H, W)"
        )
    box = bounding_box(region)
    src_box = bounding_box(source_mask)
    if box is None or src_box is None:
        return None
    flip = bool(rng.random() < augment.flip_prob)
    angle = math.radians(float(rng.uniform(-augment.rotation, augment.rotation)))
    jitter = float(rng.uniform(*augment.scale))
    colour = rng.uniform(1.0 - augment.colour, 1.0 + augment.colour, size=3)

    # Linear part (x, y order): rotation after the flip, measured on the face-mask points.
    linear = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    if flip:
        linear = linear @ np.diag([-1.0, 1.0])
    sy0, sy1, sx0, sx1 = src_box
    src_centre = np.array([(sx0 + sx1 - 1) / 2.0, (sy0 + sy1 - 1) / 2.0])
    ys, xs = np.nonzero(source_mask)
    step = max(1, ys.size // _MAX_POINTS)
    points = (np.stack([xs[::step], ys[::step]], axis=1) - src_centre) @ linear.T
    extent = points.max(axis=0) - points.min(axis=0) + 1.0  # (width, height) of the turned face
    y0, y1, x0, x1 = box
    target_size = np.array([x1 - x0, y1 - y0], np.float64)
    scale = jitter * float(np.max(target_size / extent))
    # The turned face's box centre, which goes to the region's box centre.
    turned_centre = (points.max(axis=0) + points.min(axis=0)) / 2.0

    mask: np.ndarray  # uint8, resized below
    image, mask = source_image, source_mask.astype(np.uint8) * 255
    if scale < 0.5:  # shrink with area averaging first: a bilinear warp alone would alias
        h, w = mask.shape
        new_w, new_h = max(1, round(w * scale * 2)), max(1, round(h * scale * 2))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (new_w, new_h), interpolation=cv2.INTER_AREA)
        pre = np.array([new_w / w, new_h / h])
        src_centre = (src_centre + 0.5) * pre - 0.5
        linear_scaled = scale * linear / pre  # per-axis: undo the pre-shrink, then scale
    else:
        linear_scaled = scale * linear
    target_centre = np.array([(x0 + x1 - 1) / 2.0 - x0, (y0 + y1 - 1) / 2.0 - y0])
    offset = target_centre - scale * turned_centre - linear_scaled @ src_centre
    matrix = np.hstack([linear_scaled, offset[:, None]]).astype(np.float64)
    size = (x1 - x0, y1 - y0)
    patch = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    warped_mask = cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0) >= 128
    paste = region[y0:y1, x0:x1] & warped_mask
    if not paste.any():
        return None
    return PastedFace(box, _change_colour(patch, paste, *colour), paste)


def _change_colour(
    patch: np.ndarray, mask: np.ndarray, brightness: float, contrast: float, saturation: float
) -> np.ndarray:
    """Brightness, contrast (around the face's mean) and saturation (around its grey) of a patch."""
    work = patch.astype(np.float32)
    mean = work[mask].mean(axis=0)
    work = (work - mean) * contrast + mean * brightness
    grey = (work @ _GREY)[..., None]
    work = grey + (work - grey) * saturation
    return np.clip(np.rint(work), 0, 255).astype(np.uint8)
