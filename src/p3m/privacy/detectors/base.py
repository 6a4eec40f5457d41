"""What every face detector returns, and the error it raises when its optional packages are missing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from p3m.utils.errors import UserError


@dataclass(frozen=True)
class FaceDetection:
    """One detected face, in pixel coordinates of the image given to the detector.

    Attributes:
        box: ``(x1, y1, x2, y2)``, top-left and bottom-right corners, clipped to the image.
        score: The detector's confidence in ``[0, 1]``.
        landmarks: ``(K, 2)`` array of ``(x, y)`` points when the detector gives them (CenterFace:
            5, eyes, nose, mouth corners; MediaPipe: 6, eyes, nose, mouth, ears), else None.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]


@runtime_checkable
class FaceDetector(Protocol):
    """A face detector: RGB uint8 image in, detections above its own threshold out (best first)."""

    name: str

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Detect faces in an ``(H, W, 3)`` RGB uint8 image."""
        ...


class DetectorUnavailableError(UserError, RuntimeError):
    """A registered detector cannot run here: an optional package or model file is missing."""


def check_rgb_image(image: np.ndarray, what: str = "image") -> None:
    """Raise a ValueError unless ``image`` is an ``(H, W, 3)`` uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"{what} must be an (H, W, 3) uint8 RGB array, got {got}")
