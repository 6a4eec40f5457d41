"""One picture in, its matte and cut-out out: the step every prediction path repeats.

``src/predict.py`` runs it per photo (:mod:`p3m.inference.predict_files`) and per video frame
(:mod:`p3m.inference.predict_video`), the hub predictor per call and the browser demo per upload, so
a frame of a video is matted exactly as the same picture given as a photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from p3m.models.test_time import infer_alpha
from p3m.models.test_time.resize import ResizeMode
from p3m.utils.files import write_image


@dataclass(frozen=True)
class MattingSettings:
    """How each picture is predicted: the test-time keys of ``conf/predict.yaml``."""

    strategy: str = "hybrid"
    """Test-time strategy (``hybrid``, ``resize``, ``full``)."""
    resize_mode: ResizeMode = "paper"
    """``paper`` or ``fast`` (see :mod:`p3m.models.test_time.resize`)."""
    max_short_side: int | None = 1080
    """Pictures with a longer short side are shrunk to it for inference and their matte resized
    back, which bounds the memory of the full-size pass; None keeps them."""
    device: torch.device | str = "cpu"
    """Where the image tensors go (the network's device)."""
    precision: torch.dtype | None = None
    """Autocast dtype of the network (None: fp32), see :func:`infer_alpha`."""


def fit_short_side(image: np.ndarray, max_short_side: int | None) -> np.ndarray:
    """Shrink an image whose short side exceeds ``max_short_side`` (the official sample procedure: 1080)."""
    h, w = image.shape[:2]
    if not max_short_side or min(h, w) <= max_short_side:
        return image
    scale = max_short_side / min(h, w)
    size = (max_short_side, int(h * scale)) if h >= w else (int(w * scale), max_short_side)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def predict_matte(net: nn.Module, image: np.ndarray, settings: MattingSettings) -> np.ndarray:
    """The matte of one ``(H, W, 3)`` uint8 RGB picture: ``(H, W)`` float32 in [0, 1].

    Raises:
        ValueError: the picture is too small for the strategy (see :func:`infer_alpha`).
    """
    small = fit_short_side(image, settings.max_short_side)
    tensor = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1).to(settings.device)
    # the mattes are resized once, from the pass sizes straight to the picture's size
    output = infer_alpha(
        net,
        tensor,
        settings.strategy,
        settings.resize_mode,
        precision=settings.precision,
        out_size=image.shape[:2],
    )
    return output.alpha.cpu().numpy()


def matte_uint8(alpha: np.ndarray) -> np.ndarray:
    """A float matte as the 8-bit matte every output holds: clipped to [0, 1], rounded."""
    return (np.clip(alpha, 0, 1) * 255).round().astype(np.uint8)


def composite(image: np.ndarray, matte: np.ndarray, background: tuple[int, int, int] | None) -> np.ndarray:
    """RGBA with ``matte`` as alpha (``background`` None), else the image blended over a plain colour.

    Args:
        image: (H, W, 3) uint8 RGB.
        matte: (H, W) uint8 alpha.
        background: (r, g, b) in 0..255, or None for a transparent background.
    """
    if background is None:
        return np.dstack([image, matte])
    alpha = matte.astype(np.float32)[:, :, None] / 255.0
    colour = np.asarray(background, np.float32).reshape(1, 1, 3)
    return (image.astype(np.float32) * alpha + colour * (1.0 - alpha)).round().astype(np.uint8)


def write_outputs(image: np.ndarray, alpha: np.ndarray, out_dir: Path, stem: str) -> None:
    """``alpha/<stem>.png`` (8-bit matte) and ``rgba/<stem>.png`` (the image with the matte as alpha).

    Raises:
        OSError: a file could not be written (e.g. the disk is full), naming it; no half file is left.
    """
    matte = matte_uint8(alpha)
    for sub in ("alpha", "rgba"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    write_image(out_dir / "alpha" / f"{stem}.png", matte)
    rgba = composite(image, matte, None)[:, :, [2, 1, 0, 3]]  # OpenCV writes BGRA
    write_image(out_dir / "rgba" / f"{stem}.png", rgba)
