"""Turn photos into alpha mattes and RGBA cut-outs: the task behind ``src/predict.py``."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from src.data.io import ImageReadError, ImageSizeError, read_image
from src.inference.runner import inference_precision, load_network, resolve_device
from src.models.test_time import infer_alpha
from src.models.test_time.resize import ResizeMode
from src.utils.conventions import IMAGE_SUFFIXES
from src.utils.errors import SettingError, UserError
from src.utils.files import check_outputs, write_image

log = logging.getLogger(__name__)
USAGE = "python src/predict.py ckpt_path=PATH input=FILE_OR_DIR_OR_GLOB output=DIR"


@dataclass
class PredictionSummary:
    """What a prediction run wrote and what it skipped."""

    written: list[Path] = field(default_factory=list)
    """Input images whose matte and cut-out were written."""
    failed: list[tuple[Path, str]] = field(default_factory=list)
    """(input, reason) of every image that was skipped."""


def collect_inputs(spec: str | Path) -> list[Path]:
    """A file, every image of a folder (sorted, non-recursive), or a glob pattern (sorted matches)."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
    matches = sorted(Path(p) for p in glob.glob(str(spec)) if Path(p).is_file())
    if not matches:
        raise UserError(
            f"input={spec} is no file, folder or glob pattern with matches (quote paths with spaces, "
            "commas or brackets for Hydra: input=\"'my photos/a,b.jpg'\")"
        )
    return matches


def output_paths(paths: Sequence[Path], out_dir: Path) -> list[Path]:
    """Every file :func:`predict_files` writes for `paths` (a repeated stem is skipped, not written)."""
    stems = dict.fromkeys(path.stem for path in paths)
    return [out_dir / sub / f"{stem}.png" for stem in stems for sub in ("alpha", "rgba")]


def check_output_dir(out_dir: Path) -> None:
    """Refuse an output that cannot become a folder of results: checked before the model loads.

    Raises:
        UserError: ``out_dir`` (or ``alpha``/``rgba`` inside it, or an ancestor) is a file, or the
            nearest existing folder cannot be written to.
    """
    # The nearest existing folder on the way to out_dir: everything below it is created by the run.
    nearest = next(p for p in (out_dir, *out_dir.absolute().parents) if p.exists())
    for path in (out_dir / "alpha", out_dir / "rgba", nearest):
        if path.exists() and not path.is_dir():
            raise UserError(f"output={out_dir}: {path} is a file, not a folder; choose a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise UserError(f"output={out_dir}: {nearest} is not writable; choose a folder you can write to")


def fit_short_side(image: np.ndarray, max_short_side: int | None) -> np.ndarray:
    """Shrink an image whose short side exceeds ``max_short_side`` (the official sample procedure: 1080)."""
    h, w = image.shape[:2]
    if not max_short_side or min(h, w) <= max_short_side:
        return image
    scale = max_short_side / min(h, w)
    size = (max_short_side, int(h * scale)) if h >= w else (int(w * scale), max_short_side)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def matte_uint8(alpha: np.ndarray) -> np.ndarray:
    """A float matte as the 8-bit matte every output holds: clipped to [0, 1], rounded."""
    return (np.clip(alpha, 0, 1) * 255).round().astype(np.uint8)


def write_outputs(image: np.ndarray, alpha: np.ndarray, out_dir: Path, stem: str) -> None:
    """``alpha/<stem>.png`` (8-bit matte) and ``rgba/<stem>.png`` (the image with the matte as alpha).

    Raises:
        OSError: a file could not be written (e.g. the disk is full), naming it; no half file is left.
    """
    matte = matte_uint8(alpha)
    for sub in ("alpha", "rgba"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    write_image(out_dir / "alpha" / f"{stem}.png", matte)
    rgba = np.dstack([image[:, :, ::-1], matte])  # OpenCV writes BGRA
    write_image(out_dir / "rgba" / f"{stem}.png", rgba)


def predict_files(
    net: nn.Module,
    paths: Sequence[Path],
    out_dir: Path,
    strategy: str = "hybrid",
    resize_mode: ResizeMode = "paper",
    max_short_side: int | None = 1080,
    device: torch.device | str = "cpu",
    precision: torch.dtype | None = None,
) -> PredictionSummary:
    """Predict every image; unreadable ones, repeated names and failed writes are reported and skipped.

    Args:
        net: The network in eval mode, on ``device``.
        paths: Input images; outputs are named after their stems.
        out_dir: Receives ``alpha/<stem>.png`` and ``rgba/<stem>.png``.
        strategy: Test-time strategy (``hybrid``, ``resize``, ``full``).
        resize_mode: ``paper`` or ``fast`` (see :mod:`src.models.test_time.resize`).
        max_short_side: Photos with a longer short side are shrunk to it for inference and their
            matte resized back, which bounds the memory of the full-size pass; None keeps them.
        device: Where the image tensors go.
        precision: Autocast dtype of the network (None: fp32), see :func:`infer_alpha`.
    """
    summary = PredictionSummary()
    sources: dict[str, Path] = {}
    for path in tqdm(paths, desc="predict", unit="img"):
        if path.stem in sources:
            summary.failed.append(
                (path, f"its name clashes with {sources[path.stem]}: both would be {path.stem}.png")
            )
            log.warning("skipped %s: %s", path, summary.failed[-1][1])
            continue
        try:
            original = read_image(path, exif=True)
        except (ImageReadError, ImageSizeError) as err:
            summary.failed.append((path, str(err)))
            log.warning("skipped %s", err)
            continue
        image = fit_short_side(original, max_short_side)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(device)
        try:
            # the mattes are resized once, from the pass sizes straight to the photo's size
            output = infer_alpha(
                net, tensor, strategy, resize_mode, precision=precision, out_size=original.shape[:2]
            )
        except ValueError as err:  # e.g. too small for the strategy
            summary.failed.append((path, str(err)))
            log.warning("skipped %s: %s", path, err)
            continue
        alpha = output.alpha.cpu().numpy()
        sources[path.stem] = path
        try:
            write_outputs(original, alpha, out_dir, path.stem)
        except OSError as err:  # a full disk fails every later image too; each is counted
            summary.failed.append((path, str(err)))
            log.warning("failed %s: %s", path, err)
            continue
        summary.written.append(path)
    return summary


def run_prediction(cfg: DictConfig) -> PredictionSummary:
    """Predict ``cfg.input`` with ``cfg.ckpt_path`` into ``cfg.output`` (the predict config)."""
    weights = "onnx_path" if cfg.get("runtime") == "onnx" else "ckpt_path"
    missing = [key for key in (weights, "input", "output") if cfg.get(key) in (None, "")]
    if missing:
        raise SettingError(f"set {', '.join(missing)}: {USAGE}")
    # Everything about the inputs and outputs is checked before the model loads: a refusal costs nothing.
    paths = collect_inputs(str(cfg.input))
    if not paths:
        raise UserError(f"input={cfg.input} holds no images ({', '.join(IMAGE_SUFFIXES)}); {USAGE}")
    out_dir = Path(str(cfg.output))
    check_output_dir(out_dir)
    check_outputs(output_paths(paths, out_dir), paths, overwrite=bool(cfg.get("overwrite", False)))
    device = resolve_device(cfg.device)
    net, meta = load_network(cfg, device)
    log.info(
        "predicting %d image(s) with %s (%s, %s)", len(paths), meta["checkpoint"], meta["backbone"], device
    )
    summary = predict_files(
        net,
        paths,
        out_dir,
        cfg.test_strategy,
        cfg.resize_mode,
        cfg.max_short_side,
        device,
        inference_precision(cfg),
    )
    log.info(
        "wrote %d mattes to %s and cut-outs to %s", len(summary.written), out_dir / "alpha", out_dir / "rgba"
    )
    for path, reason in summary.failed:
        log.error("failed: %s (%s)", path, reason)
    return summary
