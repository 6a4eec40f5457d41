"""Turn photos into alpha mattes and RGBA cut-outs: the task behind ``src/predict.py`` (a video input
is handed to :mod:`src.inference.predict_video`)."""

from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from src.data.io import ImageReadError, ImageSizeError, read_image
from src.inference.matting import MattingSettings, predict_matte, write_outputs
from src.inference.predict_video import VideoJob, plan_video, predict_video, single_video
from src.inference.runner import inference_precision, load_network, resolve_device
from src.utils.conventions import IMAGE_SUFFIXES
from src.utils.errors import SettingError, UserError
from src.utils.files import check_output_dir, check_outputs

log = logging.getLogger(__name__)
USAGE = "python src/predict.py ckpt_path=PATH input=FILE_OR_DIR_OR_GLOB output=DIR"


@dataclass
class PredictionSummary:
    """What a prediction run wrote and what it skipped."""

    written: list[Path] = field(default_factory=list)
    """Inputs (images, or the video) whose matte and cut-out were written."""
    failed: list[tuple[Path, str]] = field(default_factory=list)
    """(input, reason) of every input that was skipped."""
    what: str = "images"
    """What the inputs are, plural, for the log: ``images`` or ``videos``."""


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


def predict_files(
    net: nn.Module, paths: Sequence[Path], out_dir: Path, settings: MattingSettings
) -> PredictionSummary:
    """Predict every image; unreadable ones, repeated names and failed writes are reported and skipped.

    Args:
        net: The network in eval mode, on ``settings.device``.
        paths: Input images; outputs are named after their stems.
        out_dir: Receives ``alpha/<stem>.png`` and ``rgba/<stem>.png``.
        settings: The test-time settings (strategy, resize mode, ``max_short_side``, device, precision).
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
        try:
            alpha = predict_matte(net, original, settings)
        except ValueError as err:  # e.g. too small for the strategy
            summary.failed.append((path, str(err)))
            log.warning("skipped %s: %s", path, err)
            continue
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
    """Predict ``cfg.input`` with ``cfg.ckpt_path`` into ``cfg.output`` (the predict config).

    The input is images (a file, a folder, a glob) or one video file, told apart by its suffix.
    """
    weights = "onnx_path" if cfg.get("runtime") == "onnx" else "ckpt_path"
    missing = [key for key in (weights, "input", "output") if cfg.get(key) in (None, "")]
    if missing:
        raise SettingError(f"set {', '.join(missing)}: {USAGE}")
    # Everything about the inputs and outputs is checked before the model loads: a refusal costs nothing.
    paths = collect_inputs(str(cfg.input))
    if not paths:
        raise UserError(f"input={cfg.input} holds no images ({', '.join(IMAGE_SUFFIXES)}); {USAGE}")
    out_dir = Path(str(cfg.output))
    overwrite = bool(cfg.get("overwrite", False))
    video_path = single_video(paths)
    job = None if video_path is None else plan_video(cfg, video_path, out_dir, overwrite)
    if job is None:
        check_output_dir(out_dir, ("alpha", "rgba"))
        check_outputs(output_paths(paths, out_dir), paths, overwrite=overwrite)
    device = resolve_device(cfg.device)
    net, meta = load_network(cfg, device)
    settings = MattingSettings(
        cfg.test_strategy, cfg.resize_mode, cfg.max_short_side, device, inference_precision(cfg)
    )
    model = f"{meta['checkpoint']} ({meta['backbone']}, {device})"
    if job is not None:
        return _predict_one_video(net, job, settings, model)
    log.info("predicting %d image(s) with %s", len(paths), model)
    summary = predict_files(net, paths, out_dir, settings)
    log.info(
        "wrote %d mattes to %s and cut-outs to %s", len(summary.written), out_dir / "alpha", out_dir / "rgba"
    )
    for path, reason in summary.failed:
        log.error("failed: %s (%s)", path, reason)
    return summary


def _predict_one_video(
    net: nn.Module, job: VideoJob, settings: MattingSettings, model: str
) -> PredictionSummary:
    """:func:`predict_video` with its log lines; a failed write is a failed input (exit 1), as for images."""
    video = job.video
    log.info(
        "predicting %s (%s frames, %dx%d, %g fps) with %s",
        video.path,
        video.frame_count or "unknown",
        video.width,
        video.height,
        video.fps,
        model,
    )
    summary = PredictionSummary(what="videos")
    try:
        frames = predict_video(net, job, settings)
    except OSError as err:
        summary.failed.append((video.path, str(err)))
        log.error("failed: %s (%s)", video.path, err)
        return summary
    summary.written.append(video.path)
    log.info("wrote the mattes of %d frames to %s and %s", frames, *job.outputs)
    return summary
