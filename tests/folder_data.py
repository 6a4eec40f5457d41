"""Folders of portraits and labels for the data=folder tests, and a stand-in face detector.

``make_folder`` writes synthetic portraits with their mattes (or 0/255 masks); ``sample_folder``
the 8 distinct sample portraits (tests/fixtures/p3m_samples) and their mattes, shrunk. Importing this
module registers the detector ``test-centre-box``, which finds one "face" in the upper middle of every
image: the anonymiser of ``privacy=ppt`` runs without CenterFace's optional install.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from p3m.data.labels import binarize
from p3m.data.synthetic_portrait import render_portrait
from p3m.privacy.detectors import FaceDetection, list_detectors, register_detector

TEST_DETECTOR = "test-centre-box"


class CentreBoxDetector:
    """Test helper: one 'face' in the upper middle of every image."""

    name = TEST_DETECTOR

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """The fixed box, whatever the image."""
        h, w = image.shape[:2]
        return [FaceDetection((w * 0.35, h * 0.1, w * 0.65, h * 0.35), 0.9)]


if TEST_DETECTOR not in list_detectors():
    register_detector(TEST_DETECTOR)(lambda threshold=0.0: CentreBoxDetector())


def make_folder(
    root: Path, count: int = 6, size: tuple[int, int] = (96, 64), binary: bool = False, seed: int = 0
) -> tuple[Path, Path]:
    """``count`` synthetic portraits in root/images/p<i>.jpg, their mattes (or masks) in root/mattes/."""
    images, mattes = root / "images", root / "mattes"
    images.mkdir(parents=True, exist_ok=True)
    mattes.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        portrait = render_portrait(np.random.default_rng([seed, i]), *size)
        cv2.imwrite(str(images / f"p{i}.jpg"), portrait.original[:, :, ::-1])
        alpha = binarize(portrait.alpha, 0, 255) if binary else portrait.alpha
        cv2.imwrite(str(mattes / f"p{i}.png"), alpha)
    return images, mattes


def sample_folder(
    samples_dir: Path, photos: Path, mattes: Path, binary: bool = False, short_side: int = 360
) -> None:
    """The 8 distinct sample portraits (4 face-blurred, 4 originals) in ``photos``, labels in ``mattes``,
    shrunk to ``short_side`` (at 1080 px every step of a test would take about 9 times longer)."""
    photos.mkdir(parents=True, exist_ok=True)
    mattes.mkdir(parents=True, exist_ok=True)
    np_split = samples_dir / "validation" / "P3M-500-NP"
    for image_dir, mask_dir in (
        (samples_dir / "train" / "blurred_image", samples_dir / "train" / "mask"),
        (np_split / "original_image", np_split / "mask"),
    ):
        for image in sorted(image_dir.iterdir()):
            picture = cv2.imread(str(image))
            label = cv2.imread(str(mask_dir / f"{image.stem}.png"), cv2.IMREAD_GRAYSCALE)
            scale = short_side / min(label.shape)
            size = (round(label.shape[1] * scale), round(label.shape[0] * scale))
            label = cv2.resize(label, size, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(photos / image.name), cv2.resize(picture, size, interpolation=cv2.INTER_AREA))
            cv2.imwrite(str(mattes / f"{image.stem}.png"), binarize(label, 0, 255) if binary else label)
