"""MediaPipe's BlazeFace full-range face detector: an optional second detector, never installed by default.

mediapipe 0.10.21 is the last release that bundles its face models (later ones download them at
run time, and this tool must run offline); it needs ``numpy<2`` and ``protobuf<5``, which conflict
with the project's environment. Use it from a separate environment::

    python -m venv .venv-mediapipe
    .venv-mediapipe/bin/pip install -e . "mediapipe==0.10.21" "numpy<2" "protobuf<5"
    .venv-mediapipe/bin/python src/anonymize.py detector=mediapipe input=... output=...

Not exercised by the test suite (the package cannot be installed beside ours).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from p3m.privacy.detectors.base import DetectorUnavailableError, FaceDetection, check_rgb_image
from p3m.privacy.detectors.registry import register_detector

INSTALL_HINT = (
    'install with `pip install "mediapipe==0.10.21" "numpy<2" "protobuf<5"` in a separate environment '
    "(it conflicts with this project's numpy 2 / protobuf); or use detector=centerface"
)


@register_detector("mediapipe")
class MediaPipeDetector:
    """BlazeFace through ``mediapipe.solutions.face_detection`` (legacy solutions API of 0.10.21).

    Args:
        threshold: Minimum detection confidence.
        full_range: True selects the full-range model (faces up to ~5 m, fits portraits of any
            framing); False the short-range one (faces within ~2 m of the camera).
    """

    name = "mediapipe"

    def __init__(self, threshold: float = 0.5, full_range: bool = True) -> None:
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as err:
            raise DetectorUnavailableError(
                f"detector=mediapipe needs mediapipe 0.10.21: {INSTALL_HINT}"
            ) from err
        self.threshold = float(threshold)
        self._model: Any = face_detection.FaceDetection(
            model_selection=1 if full_range else 0, min_detection_confidence=self.threshold
        )

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces in an ``(H, W, 3)`` RGB uint8 image with confidence >= ``threshold``, best first."""
        check_rgb_image(image)
        height, width = image.shape[:2]
        result = self._model.process(image)
        detections = []
        for found in result.detections or []:
            rel = found.location_data.relative_bounding_box
            x1, y1 = max(0.0, rel.xmin * width), max(0.0, rel.ymin * height)
            x2 = min(float(width), (rel.xmin + rel.width) * width)
            y2 = min(float(height), (rel.ymin + rel.height) * height)
            # Six keypoints: both eyes, nose tip, mouth centre, both ear tragions.
            points = np.array(
                [[kp.x * width, kp.y * height] for kp in found.location_data.relative_keypoints], np.float32
            )
            detections.append(
                FaceDetection(box=(x1, y1, x2, y2), score=float(found.score[0]), landmarks=points)
            )
        return sorted(detections, key=lambda d: -d.score)
