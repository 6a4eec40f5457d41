"""Public source faces for P3M-CP: face images with face-parsing masks, in two layouts.

- **CelebAMask-HQ** (the paper's source set)::

      <root>/CelebA-HQ-img/<i>.jpg                                  1024 x 1024 faces
      <root>/CelebAMask-HQ-mask-anno/<i // 2000>/<i:05d>_<part>.png  512 x 512 part masks

  The face mask is the union of the parts in :data:`CELEBAMASK_FACE_PARTS` (skin, nose, glasses,
  eyes, brows, mouth, lips): the face without hair, ears, neck, hat or clothes, which is what the
  P3M-10k face masks cover. A part file that does not exist is simply absent in that image (not
  every face has glasses); an image without a skin mask is an error.
- **plain**: ``<root>/images/*`` and ``<root>/masks/*`` paired by stem, any nonzero mask pixel is
  face (the synthetic dataset writes this layout in ``public_faces/``).

Image and mask are brought to one size by shrinking the larger one (CelebAMask-HQ: the 1024 px
image to the masks' 512 px, with area interpolation), so pasting never works on more pixels than the
mask resolves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from p3m.data.io import read_image, read_mask
from p3m.data.layout import DatasetLayoutError, check_partners, index_folder
from p3m.utils.docs import WHERE_TO_GET

CELEBAMASK_IMAGE_DIR = "CelebA-HQ-img"
CELEBAMASK_MASK_DIR = "CelebAMask-HQ-mask-anno"
CELEBAMASK_PER_FOLDER = 2000  # CelebAMask-HQ stores the part masks of images i in folder i // 2000
#: The CelebAMask-HQ parts that make up a face (no hair, ears or neck).
CELEBAMASK_FACE_PARTS: tuple[str, ...] = (
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "mouth",
    "u_lip",
    "l_lip",
)


@dataclass(frozen=True)
class SourceFace:
    """One public face: RGB image (H, W, 3) uint8 and its face mask (H, W) bool."""

    image: np.ndarray
    mask: np.ndarray


class PublicFaces:
    """An index of public face images with face masks (CelebAMask-HQ or ``images/`` + ``masks/``).

    Args:
        root: the folder holding either layout.

    Attributes:
        layout: ``celebamask-hq`` or ``plain``.
        read_dirs: the folders faces are read from (for the privacy audit).

    Raises:
        DatasetLayoutError: neither layout is found, or the folders hold no pairs.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        celeb_images, celeb_masks = self.root / CELEBAMASK_IMAGE_DIR, self.root / CELEBAMASK_MASK_DIR
        plain_images, plain_masks = self.root / "images", self.root / "masks"
        if celeb_images.is_dir() and celeb_masks.is_dir():
            self.layout = "celebamask-hq"
            images = index_folder(celeb_images)
            bad = [stem for stem in images if not stem.isdigit()]
            if bad:
                raise DatasetLayoutError(
                    f"{celeb_images}: CelebAMask-HQ images are named <index>.jpg, found {bad[:5]}; "
                    "use the plain images/ + masks/ layout for other face sets"
                )
            self._items: list[tuple[Path, Path | int]] = [(path, int(stem)) for stem, path in images.items()]
            self.read_dirs: tuple[Path, ...] = (celeb_images, celeb_masks)
        elif plain_images.is_dir() and plain_masks.is_dir():
            self.layout = "plain"
            images, masks = index_folder(plain_images), index_folder(plain_masks)
            check_partners(images, plain_images, masks, plain_masks, both_ways=False)
            self._items = [(path, masks[stem]) for stem, path in images.items()]
            self.read_dirs = (plain_images, plain_masks)
        else:
            raise DatasetLayoutError(
                f"no public source faces at {self.root}: expected CelebAMask-HQ ({CELEBAMASK_IMAGE_DIR}/ and "
                f"{CELEBAMASK_MASK_DIR}/) or images/ + masks/ (face masks named like the images); set "
                "privacy.source_dir=/path/to/CelebAMask-HQ (data=synthetic writes <root>/public_faces; "
                f"CelebAMask-HQ: {WHERE_TO_GET})"
            )
        if not self._items:
            raise DatasetLayoutError(f"no face images in {self.read_dirs[0]}")

    def __len__(self) -> int:
        return len(self._items)

    def image_path(self, index: int) -> Path:
        """The image file of face ``index``."""
        return self._items[index][0]

    def load(self, index: int) -> SourceFace:
        """Read face ``index``: image and face mask at a common size (see the module docstring)."""
        image_path, mask_ref = self._items[index]
        image = read_image(image_path)
        if isinstance(mask_ref, Path):
            mask = read_mask(mask_ref) > 0
            mask_name = str(mask_ref)
        else:
            mask, mask_name = self._celebamask_mask(mask_ref)
        return _same_size(image, mask, image_path, mask_name)

    def _celebamask_mask(self, number: int) -> tuple[np.ndarray, str]:
        folder = self.root / CELEBAMASK_MASK_DIR / str(number // CELEBAMASK_PER_FOLDER)
        mask: np.ndarray | None = None
        skin = folder / f"{number:05d}_skin.png"
        if not skin.is_file():
            raise DatasetLayoutError(
                f"CelebAMask-HQ face {number}: {skin} not found (every face needs its skin mask); check the "
                "download of CelebAMask-HQ-mask-anno"
            )
        for part in CELEBAMASK_FACE_PARTS:
            path = folder / f"{number:05d}_{part}.png"
            if not path.is_file():
                continue  # that part is not in this image (e.g. no glasses)
            part_mask = read_mask(path) > 0
            if mask is not None and part_mask.shape != mask.shape:
                raise DatasetLayoutError(f"{path} is {part_mask.shape}, the other parts {mask.shape}")
            mask = part_mask if mask is None else mask | part_mask
        assert mask is not None  # the skin mask exists
        return mask, str(skin)


def _same_size(image: np.ndarray, mask: np.ndarray, image_path: Path, mask_name: str) -> SourceFace:
    """Shrink the larger of image and mask to the other's size (they must have the same aspect)."""
    (ih, iw), (mh, mw) = image.shape[:2], mask.shape
    if (ih, iw) == (mh, mw):
        return SourceFace(image, mask)
    if abs(ih / iw - mh / mw) > 0.02:
        raise DatasetLayoutError(
            f"source face {image_path} is {ih}x{iw} but its mask {mask_name} is {mh}x{mw}: they must show "
            "the same picture (same aspect ratio)"
        )
    if ih * iw > mh * mw:
        image = cv2.resize(image, (mw, mh), interpolation=cv2.INTER_AREA)
    else:
        mask = cv2.resize(mask.astype(np.uint8), (iw, ih), interpolation=cv2.INTER_NEAREST) > 0
    return SourceFace(image, mask)
