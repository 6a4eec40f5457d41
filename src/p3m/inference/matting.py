"""One picture in, its matte and cut-out out: the step every prediction path repeats.

``src/predict.py`` runs it per photo (:mod:`p3m.inference.predict_files`) and per video frame
(:mod:`p3m.inference.predict_video`), the hub predictor per call and the browser demo per upload, so
a frame of a video is matted exactly as the same picture given as a photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from p3m.data.io import read_image, read_image_reduced
from p3m.models.test_time import batched_network_passes, matte_rows, network_passes
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
    """Autocast dtype of the network (None: fp32), see :func:`~p3m.models.test_time.infer_alpha`."""


BAND_PIXELS = 1 << 22  # output pixels per band of a large matte: ~32 MB per float64 map


def shrunk_size(height: int, width: int, max_short_side: int | None) -> tuple[int, int] | None:
    """(width, height) of a picture shrunk to ``max_short_side`` (cv2's order), None if it is not larger."""
    if not max_short_side or min(height, width) <= max_short_side:
        return None
    scale = max_short_side / min(height, width)
    return (max_short_side, int(height * scale)) if height >= width else (int(width * scale), max_short_side)


def fit_short_side(image: np.ndarray, max_short_side: int | None) -> np.ndarray:
    """Shrink an image whose short side exceeds ``max_short_side`` (the official sample procedure: 1080)."""
    size = shrunk_size(image.shape[0], image.shape[1], max_short_side)
    return image if size is None else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def predict_matte(net: nn.Module, image: np.ndarray, settings: MattingSettings) -> np.ndarray:
    """The matte of one ``(H, W, 3)`` uint8 RGB picture: ``(H, W)`` float32 in [0, 1].

    Raises:
        ValueError: the picture is too small for the strategy (see :func:`~p3m.models.test_time.infer_alpha`).
    """
    return predict_mattes(net, [image], settings)[0]


@torch.no_grad()
def predict_mattes(
    net: nn.Module, images: Sequence[np.ndarray], settings: MattingSettings
) -> list[np.ndarray]:
    """:func:`predict_matte` of pictures of one size (a video's frames), the network passes batched.

    Each matte equals its own :func:`predict_matte` within float rounding (see
    :func:`~p3m.models.test_time.batched_network_passes`); one picture gives it bit for bit.

    Raises:
        ValueError: the pictures are too small for the strategy, or not all of one size.
    """
    tensors = [
        torch.from_numpy(np.ascontiguousarray(fit_short_side(image, settings.max_short_side)))
        .permute(2, 0, 1)
        .to(settings.device)
        for image in images
    ]
    passes = batched_network_passes(
        net, tensors, settings.strategy, settings.resize_mode, precision=settings.precision
    )
    # the mattes are resized once, from the pass sizes straight to the picture's size
    return [
        matte_rows(maps, image.shape[:2], settings.resize_mode).cpu().numpy()
        for maps, image in zip(passes, images, strict=True)
    ]


@torch.no_grad()
def predict_matte_uint8(
    net: nn.Module, image: np.ndarray, settings: MattingSettings, out_size: tuple[int, int] | None = None
) -> np.ndarray:
    """:func:`matte_uint8` of :func:`predict_matte`, bit for bit, made in bands of output rows.

    A 10000x10000 matte is 100 MB as uint8 but 800 MB per float64 map, and the strategies resize
    two or three maps to it: the network's pass maps are resized band by band, each band turned
    into 8 bits at once (``fast`` resize mode resizes whole float32 maps, so it runs as one band).

    Args:
        net: The network in eval mode, on ``settings.device``.
        image: ``(H, W, 3)`` uint8 RGB; shrunk to ``settings.max_short_side`` for the network.
        settings: The test-time settings.
        out_size: (H, W) of the matte when ``image`` is a smaller copy of the picture.

    Raises:
        ValueError: the picture is too small for the strategy.
    """
    small = fit_short_side(image, settings.max_short_side)
    tensor = torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1).to(settings.device)
    maps = network_passes(net, tensor, settings.strategy, settings.resize_mode, precision=settings.precision)
    del tensor
    height, width = out_size or image.shape[:2]
    matte = np.empty((height, width), np.uint8)
    step = height if settings.resize_mode == "fast" else max(1, BAND_PIXELS // width)
    for start in range(0, height, step):
        rows = (start, min(start + step, height))
        band = matte_rows(maps, (height, width), settings.resize_mode, rows)
        matte[rows[0] : rows[1]] = matte_uint8(band.cpu().numpy())
    return matte


def matte_photo(net: nn.Module, path: Path, settings: MattingSettings) -> tuple[np.ndarray, np.ndarray]:
    """A photo file (EXIF orientation applied) and its 8-bit matte, in bounded memory.

    A JPEG larger than ``max_short_side`` is decoded at a reduced size for the network
    (:func:`~p3m.data.io.read_image_reduced`) and read whole only after the matte is made, for the
    cut-out; every other picture is read once and matted as :func:`predict_matte_uint8` does.

    Raises:
        ImageReadError, ImageSizeError: the file cannot be read; ValueError: too small to matte.
    """
    if settings.max_short_side:
        reduced, size = read_image_reduced(path, settings.max_short_side, exif=True)
        if reduced.shape[:2] != size:
            shrunk = shrunk_size(*size, settings.max_short_side)
            small = reduced if shrunk is None else cv2.resize(reduced, shrunk, interpolation=cv2.INTER_LINEAR)
            del reduced
            matte = predict_matte_uint8(net, small, settings, out_size=size)
            del small
            image = read_image(path, exif=True)
            if image.shape[:2] == size:
                return image, matte
            return image, predict_matte_uint8(net, image, settings)  # a header that lied about the size
        return reduced, predict_matte_uint8(net, reduced, settings)
    image = read_image(path, exif=True)
    return image, predict_matte_uint8(net, image, settings)


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
    write_matte_outputs(image, matte_uint8(alpha), out_dir, stem)


def write_matte_outputs(image: np.ndarray, matte: np.ndarray, out_dir: Path, stem: str) -> None:
    """:func:`write_outputs` of an 8-bit matte; the cut-out is made as one BGRA copy of the image.

    Raises:
        OSError: a file could not be written (e.g. the disk is full), naming it; no half file is left.
    """
    for sub in ("alpha", "rgba"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    write_image(out_dir / "alpha" / f"{stem}.png", matte)
    bgra = cv2.cvtColor(image, cv2.COLOR_RGB2BGRA)  # OpenCV writes BGRA
    bgra[:, :, 3] = matte
    write_image(out_dir / "rgba" / f"{stem}.png", bgra)
