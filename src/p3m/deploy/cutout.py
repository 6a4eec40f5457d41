"""What the browser demo computes for one portrait, without the browser: matte, cut-out, downloads.

``src/app.py`` (Gradio) only wires these functions to widgets, so tests can call them directly.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from p3m.inference.matting import composite, matte_uint8
from p3m.privacy.anonymizer import obfuscate_detections
from p3m.privacy.detectors import FaceDetector
from p3m.privacy.obfuscate import FaceObfuscator
from p3m.utils.files import write_image

# (H, W, 3) uint8 RGB, test-time strategy -> (H, W) float32 alpha in [0, 1]
MatteFn = Callable[[np.ndarray, str], np.ndarray]


class DemoOutputs(NamedTuple):
    """The demo's results for one portrait."""

    image: np.ndarray
    """The RGB image the matte was predicted from (the anonymized one when asked for)."""
    matte: np.ndarray
    """(H, W) uint8 alpha matte."""
    cutout: np.ndarray
    """(H, W, 4) RGBA with the matte as alpha, or (H, W, 3) RGB composited over a colour."""
    faces: int | None
    """Faces found and obfuscated; None when anonymization was off."""


@dataclass
class FaceAnonymizer:
    """Detect faces and obfuscate them, as ``src/anonymize.py`` does for one image without an alpha."""

    detector: FaceDetector
    obfuscator: FaceObfuscator
    margin: float = 0.15

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, int]:
        """The image with its faces obfuscated, and how many faces were found."""
        detections = self.detector.detect(rgb)
        if not detections:
            return rgb, 0
        image, _ = obfuscate_detections(rgb, detections, self.obfuscator, margin=self.margin)
        return image, len(detections)


def parse_colour(text: str) -> tuple[int, int, int]:
    """``#rgb``, ``#rrggbb`` or ``rgb(a)(r, g, b[, a])`` (what colour pickers send) -> (r, g, b) in 0..255.

    Raises:
        ValueError: Anything else.
    """
    value = text.strip().lower()
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        return tuple(int(c * 2, 16) for c in value[1:])  # type: ignore[return-value]  # 3 digits: 3 ints
    if re.fullmatch(r"#[0-9a-f]{6}", value):
        return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]  # 3 ints
    if m := re.fullmatch(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(,\s*[\d.]+\s*)?\)", value):
        channels = [round(float(c)) for c in m.groups()[:3]]
        if all(0 <= c <= 255 for c in channels):
            return tuple(channels)  # type: ignore[return-value]  # the regex has 3 groups: 3 ints
    raise ValueError(f"background colour {text!r}: expected #rrggbb or rgb(r, g, b)")


def make_outputs(
    image: np.ndarray,
    matte_fn: MatteFn,
    strategy: str = "hybrid",
    background: str | None = None,
    anonymizer: Callable[[np.ndarray], tuple[np.ndarray, int]] | None = None,
) -> DemoOutputs:
    """Matte and cut-out of one portrait.

    Args:
        image: (H, W, 3) uint8 RGB (what the upload widget gives).
        matte_fn: Predicts the alpha, e.g. a :class:`~p3m.inference.predictor.Predictor`.
        strategy: Test-time strategy passed to ``matte_fn``.
        background: None or ``transparent`` for an RGBA cut-out; a colour (``#00ff00``) to composite over.
        anonymizer: Obfuscates the faces of the input before prediction (a :class:`FaceAnonymizer`).
    """
    if image is None:
        raise ValueError("upload a portrait first")
    faces = None
    if anonymizer is not None:
        image, faces = anonymizer(image)
    alpha = matte_fn(image, strategy)
    matte = matte_uint8(alpha)
    colour = None if background in (None, "", "transparent") else parse_colour(background)
    return DemoOutputs(image, matte, composite(image, matte, colour), faces)


def save_downloads(outputs: DemoOutputs, stem: str = "portrait") -> tuple[Path, Path]:
    """Write ``<stem>_matte.png`` and ``<stem>_cutout.png`` into a new temporary folder (never over a file).

    Returns:
        The matte's and the cut-out's paths.
    """
    folder = Path(tempfile.mkdtemp(prefix="p3m_app_"))
    matte_path, cutout_path = folder / f"{stem}_matte.png", folder / f"{stem}_cutout.png"
    write_image(matte_path, outputs.matte)  # checked writes: a failure raises, naming the file
    code = cv2.COLOR_RGBA2BGRA if outputs.cutout.shape[2] == 4 else cv2.COLOR_RGB2BGR
    write_image(cutout_path, cv2.cvtColor(outputs.cutout, code))
    return matte_path, cutout_path
