"""Face masks from detections: the region the anonymizer obfuscates and writes to ``facemask/``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from p3m.privacy.detectors.base import FaceDetection

MaskShape = Literal["ellipse", "box"]


def face_mask_from_detections(
    detections: Sequence[FaceDetection],
    image_hw: tuple[int, int],
    margin: float = 0.15,
    shape: MaskShape = "ellipse",
) -> np.ndarray:
    """Rasterise detections into one face mask.

    Each detected box is enlarged by ``margin`` times its width on the left and on the right and by
    ``margin`` times its height at the top and at the bottom (detector boxes stop near the hairline
    and the chin), then filled as the inscribed ellipse (close to the face outline, like P3M-10k's
    face masks) or as the box itself.

    Args:
        detections: Faces in pixel coordinates of an image of size ``image_hw``.
        image_hw: ``(height, width)`` of the mask.
        margin: Enlargement per side, as a fraction of the box size; 0 keeps the detector's box.
        shape: ``ellipse`` or ``box``.

    Returns:
        ``(H, W)`` uint8 mask, 255 inside a face and 0 elsewhere (the P3M-10k ``facemask`` format);
        all zeros when there is no detection.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if shape not in ("ellipse", "box"):
        raise ValueError(f"unknown face mask shape {shape!r}; use ellipse or box")
    height, width = image_hw
    mask = np.zeros((height, width), np.uint8)
    for det in detections:
        x1, y1, x2, y2 = det.box
        dx, dy = margin * (x2 - x1), margin * (y2 - y1)
        x1, y1, x2, y2 = x1 - dx, y1 - dy, x2 + dx, y2 + dy
        if shape == "box":
            left, top = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
            mask[top : max(top, int(np.ceil(y2))), left : max(left, int(np.ceil(x2)))] = 255
        else:
            centre = (round((x1 + x2) / 2), round((y1 + y2) / 2))
            axes = (max(1, round((x2 - x1) / 2)), max(1, round((y2 - y1) / 2)))
            cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, thickness=-1)
    return mask
