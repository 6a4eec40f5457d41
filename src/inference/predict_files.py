"""Turn photos into alpha mattes and RGBA cut-outs (``src/predict.py``)."""

from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from src.data.io import ImageReadError, ImageSizeError, read_image
from src.inference.resize import ResizeMode
from src.inference.test_time import infer_alpha

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def collect_inputs(spec: str | Path) -> list[Path]:
    """A file, every image of a folder (sorted, non-recursive), or a glob pattern."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
    matches = sorted(Path(p) for p in glob.glob(str(spec)) if Path(p).is_file())
    if not matches:
        raise FileNotFoundError(f"input={spec} is no file, folder or glob pattern with matches")
    return matches


def fit_short_side(image: np.ndarray, max_short_side: int | None) -> np.ndarray:
    """Shrink an image whose short side exceeds ``max_short_side`` (the official sample procedure: 1080)."""
    h, w = image.shape[:2]
    if not max_short_side or min(h, w) <= max_short_side:
        return image
    scale = max_short_side / min(h, w)
    size = (max_short_side, int(h * scale)) if h >= w else (int(w * scale), max_short_side)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def write_outputs(image: np.ndarray, alpha: np.ndarray, out_dir: Path, stem: str) -> None:
    """``alpha/<stem>.png`` (8-bit matte) and ``rgba/<stem>.png`` (the image with the matte as alpha)."""
    matte = (np.clip(alpha, 0, 1) * 255).round().astype(np.uint8)
    for sub in ("alpha", "rgba"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_dir / "alpha" / f"{stem}.png"), matte)
    rgba = np.dstack([image[:, :, ::-1], matte])  # OpenCV writes BGRA
    cv2.imwrite(str(out_dir / "rgba" / f"{stem}.png"), rgba)


def predict_files(
    net: nn.Module,
    paths: Sequence[Path],
    out_dir: Path,
    strategy: str = "hybrid",
    resize_mode: ResizeMode = "paper",
    max_short_side: int | None = 1080,
    device: torch.device | str = "cpu",
) -> list[tuple[Path, str]]:
    """Predict every image; unreadable ones are reported and skipped.

    Returns:
        (path, reason) of every image that failed.
    """
    failed: list[tuple[Path, str]] = []
    for path in tqdm(paths, desc="predict", unit="img"):
        try:
            original = read_image(path, exif=True)
        except (ImageReadError, ImageSizeError) as err:
            failed.append((path, str(err)))
            log.warning("skipped %s", err)
            continue
        image = fit_short_side(original, max_short_side)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(device)
        try:
            alpha = infer_alpha(net, tensor, strategy, resize_mode).alpha.cpu().numpy()
        except ValueError as err:  # e.g. too small for the strategy
            failed.append((path, str(err)))
            log.warning("skipped %s: %s", path, err)
            continue
        if alpha.shape != original.shape[:2]:
            alpha = cv2.resize(alpha, original.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        write_outputs(original, alpha, out_dir, path.stem)
    return failed
