"""Scoring video mattes against ground truth: ``p3m eval mode=video``.

Each clip (:mod:`p3m.data.video_clips`) is matted frame by frame, as ``p3m predict`` mattes a video
(the network on each frame as on a photo, or existing mattes from a folder), through the stabiliser
of ``video.stabilizer``, and rounded to 8 bits as every output is. Then:

- image metrics (``mad``, ``mse``, ``grad``, any registered metric without a trimap) score every
  frame, and a clip's value is the mean over its frames;
- video metrics (``dtssd``, ``messddt``: :mod:`p3m.metrics.temporal`) score each clip.

The benchmark's value of every metric is the mean over clips (RobustVideoMatting's spreadsheet
average, for clips of equal length). Scales, as in ``METRIC_SCALES``: the image metrics keep the
P3M papers' (MAD and MSE unscaled, Grad / 10), the video metrics the video papers' (dtSSD x 1e2,
MESSDdt x 1e4). Timing counts the network and the stabiliser, not reading files or scoring.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from p3m.data.io import read_image, read_mask
from p3m.data.video_benchmark import MANIFEST_NAME as BENCHMARK_MANIFEST
from p3m.data.video_benchmark import ensure_video_benchmark
from p3m.data.video_clips import ALPHA_DIR, Clip, find_clips
from p3m.inference.loading import inference_precision, load_network, resolve_device
from p3m.inference.matting import MattingSettings, matte_uint8, predict_matte
from p3m.inference.report import (
    log_per_image_table,
    print_table,
    results_document,
    software_versions,
    write_reports,
)
from p3m.inference.stabilizers import StabilizerSettings, create_stabilizer
from p3m.metrics import METRIC_CLASSES, matting_metrics
from p3m.metrics.evaluation import SplitResult
from p3m.utils.errors import MissingInputError, SettingError
from p3m.utils.files import write_image
from p3m.utils.instantiate import instantiate_loggers

log = logging.getLogger(__name__)

# (clip, frame index, (H, W, 3) uint8 RGB frame) -> (H, W) float matte in [0, 1]
FramePredictor = Callable[[Clip, int, np.ndarray], np.ndarray]

SPLIT_NAME = "video"  # metrics.json key and log prefix: test/video/<metric>
METRIC_SCALES: dict[str, str] = {
    "mad": "mean |pred - gt| per frame, unscaled (P3M; video papers print x 1e3)",
    "mse": "mean (pred - gt)^2 per frame, unscaled (P3M; video papers print x 1e3)",
    "grad": "P3M's gradient error / 10 (not RobustVideoMatting's Grad)",
    "dtssd": "x 1e2, RobustVideoMatting/MatAnyone evaluation (frame 0 counts 0)",
    "messddt": "x 1e4, MaGGIe's evaluation, DIS flow of the ground truth",
}


@dataclass
class VideoEvaluation:
    """The scores of every clip and their mean, with what the matting cost."""

    result: SplitResult
    frames: int
    predict_seconds: float
    """Time spent in the network (or reading mattes)."""
    stabilize_seconds: float
    """Time spent in the stabiliser."""

    @property
    def fps(self) -> float:
        """Frames per second of the network and the stabiliser together."""
        return self.frames / max(self.predict_seconds + self.stabilize_seconds, 1e-9)


def network_predictor(net: nn.Module, settings: MattingSettings) -> FramePredictor:
    """Each frame through :func:`~p3m.inference.matting.predict_matte`, as ``p3m predict`` does."""

    def predict(clip: Clip, index: int, image: np.ndarray) -> np.ndarray:
        return predict_matte(net, image, settings)

    return predict


def prediction_folder_reader(pred_dir: Path) -> FramePredictor:
    """Existing mattes in the same layout: ``<pred_dir>/<clip>/pha/<frame>.png`` (RobustVideoMatting's)."""

    def predict(clip: Clip, index: int, image: np.ndarray) -> np.ndarray:
        path = pred_dir / clip.name / ALPHA_DIR / f"{clip.frames[index].stem}.png"
        if not path.is_file():
            raise MissingInputError(f"pred_dir={pred_dir}: no {path} for frame {index} of clip {clip.name}")
        return read_mask(path, dtype=np.float32)

    return predict


def split_metric_names(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(image metrics, video metrics) among registered names.

    Raises:
        SettingError: an unknown metric, or one that needs a trimap (clips have none).
    """
    unknown = [n for n in names if n not in METRIC_CLASSES]
    trimap = [n for n in names if n in METRIC_CLASSES and METRIC_CLASSES[n].needs_trimap]
    if unknown or trimap or not names:
        raise SettingError(
            f"video.metrics={list(names)}: expected registered metrics without a trimap, e.g. "
            f"[mad,mse,grad,dtssd,messddt]{'; unknown: ' + ', '.join(unknown) if unknown else ''}"
            f"{'; these need a trimap: ' + ', '.join(trimap) if trimap else ''}"
        )
    temporal = [n for n in names if METRIC_CLASSES[n].temporal]
    return [n for n in names if n not in temporal], temporal


def evaluate_clips(
    clips: Sequence[Clip],
    predict: FramePredictor,
    stabilizer: StabilizerSettings,
    metrics: Sequence[str],
    save_dir: Path | None = None,
) -> VideoEvaluation:
    """Matte, stabilise and score every clip (see the module docstring).

    Args:
        clips: From :func:`~p3m.data.video_clips.find_clips`.
        predict: Where the mattes come from.
        stabilizer: ``video.*`` settings; one fresh stabiliser per clip.
        metrics: Registered metric names (image and video metrics).
        save_dir: Write the stabilised 8-bit mattes to ``<save_dir>/<clip>/pha/<frame>.png`` (a
            ``pred_dir`` for later runs, and RobustVideoMatting's evaluation layout).

    Raises:
        SettingError: bad metric names, or a matte whose size differs from its ground truth.
    """
    image_names, video_names = split_metric_names(metrics)
    image_metrics = matting_metrics(image_names) if image_names else None
    video_metrics = {name: METRIC_CLASSES[name]() for name in video_names}
    records: dict[str, dict[str, float]] = {}
    frames = 0
    predict_seconds = stabilize_seconds = 0.0
    for clip in clips:
        mattes, seconds = _matte_clip(clip, predict, stabilizer, save_dir)
        predict_seconds, stabilize_seconds = predict_seconds + seconds[0], stabilize_seconds + seconds[1]
        truths = [read_mask(path) for path in clip.alphas]
        for index, (pred, truth) in enumerate(zip(mattes, truths, strict=True)):
            if pred.shape != truth.shape:
                raise SettingError(
                    f"clip {clip.name}, frame {index}: the matte is {pred.shape} but "
                    f"{clip.alphas[index]} is {truth.shape}"
                )
        frames += len(mattes)
        values: dict[str, float] = {}
        if image_metrics is not None:
            for pred, truth in zip(mattes, truths, strict=True):
                image_metrics.update(torch.from_numpy(pred), torch.from_numpy(truth))
            values |= {k: float(v) for k, v in image_metrics.compute().items()}
            image_metrics.reset()
        pred_clip, truth_clip = torch.from_numpy(np.stack(mattes)), torch.from_numpy(np.stack(truths))
        values |= {name: float(metric(pred_clip, truth_clip)) for name, metric in video_metrics.items()}
        records[clip.name] = {name: values[name] for name in metrics}
    mean = {name: float(np.mean([r[name] for r in records.values()])) for name in metrics}
    result = SplitResult(SPLIT_NAME, SPLIT_NAME, mean, records)
    return VideoEvaluation(result, frames, predict_seconds, stabilize_seconds)


def _matte_clip(
    clip: Clip, predict: FramePredictor, settings: StabilizerSettings, save_dir: Path | None
) -> tuple[list[np.ndarray], tuple[float, float]]:
    """The clip's stabilised 8-bit mattes in frame order, and the seconds of (prediction, stabiliser)."""
    stabilizer = create_stabilizer(settings)
    mattes: dict[int, np.ndarray] = {}
    predict_seconds = stabilize_seconds = 0.0

    def keep(ready: list[tuple[int, np.ndarray]]) -> None:
        for index, alpha in ready:
            mattes[index] = matte_uint8(alpha)
            if save_dir is not None:
                folder = save_dir / clip.name / ALPHA_DIR
                folder.mkdir(parents=True, exist_ok=True)
                write_image(folder / f"{clip.frames[index].stem}.png", mattes[index])

    for index, path in enumerate(clip.frames):
        image = read_image(path)
        start = time.perf_counter()
        alpha = predict(clip, index, image)
        middle = time.perf_counter()
        ready = stabilizer.push(image, alpha, index)
        predict_seconds += middle - start
        stabilize_seconds += time.perf_counter() - middle
        keep(ready)
    keep(stabilizer.flush())
    return [mattes[i] for i in range(len(clip.frames))], (predict_seconds, stabilize_seconds)


def video_clips(cfg: DictConfig) -> list[Clip]:
    """The clips of ``cfg.video.root``; the synthetic benchmark is written there first when the folder
    is missing or empty (or is that benchmark: its parameters are checked)."""
    root = Path(str(cfg.video.root)).expanduser()
    if not root.exists() or not any(root.iterdir()) or (root / BENCHMARK_MANIFEST).is_file():
        benchmark = cfg.video.benchmark
        ensure_video_benchmark(
            root,
            benchmark.clips,
            benchmark.frames,
            tuple(benchmark.size),
            benchmark.seed,
            benchmark.portraits,
        )
    return find_clips(root)


def run_video_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.ckpt_path`` (or ``cfg.pred_dir``) on the clips of ``cfg.video.root``, stabilised by
    ``cfg.video.stabilizer``; writes metrics.json and per_image.csv (one row per clip) and logs
    ``test/video/<metric>``.

    Returns:
        The ``metrics.json`` document.
    """
    out_dir = Path(cfg.paths.output_dir)
    stabilizer = StabilizerSettings.from_config(cfg.video)
    split_metric_names(list(cfg.video.metrics))  # checked before the model loads
    clips = video_clips(cfg)
    device = resolve_device(str(cfg.get("device", "auto")))
    if cfg.get("pred_dir"):
        predict = prediction_folder_reader(Path(str(cfg.pred_dir)))
        meta: dict[str, Any] = {"pred_dir": str(cfg.pred_dir), "checkpoint": None, "backbone": None}
    else:
        net, meta = load_network(cfg, device)
        settings = MattingSettings(
            str(cfg.test_strategy), cfg.resize_mode, None, device, inference_precision(cfg)
        )
        predict = network_predictor(net, settings)
        meta |= {"strategy": settings.strategy, "resize_mode": settings.resize_mode}
    log.info("scoring %d clips of %s, stabilizer %s", len(clips), cfg.video.root, stabilizer.stabilizer)
    save_dir = out_dir / "predictions" if cfg.save_predictions else None
    evaluation = evaluate_clips(clips, predict, stabilizer, list(cfg.video.metrics), save_dir)
    results = [evaluation.result]
    meta |= {
        "mode": "video",
        "video_root": str(cfg.video.root),
        "stabilizer": dataclasses.asdict(stabilizer),
        "clips": len(clips),
        "frames": evaluation.frames,
        "frames_per_second": evaluation.fps,
        "scales": {name: METRIC_SCALES.get(name, "") for name in cfg.video.metrics},
        "device": str(device),
        "versions": software_versions(),
    }
    doc = results_document(results, {}, meta)
    write_reports(results, doc, out_dir)
    print_table(results, {}, items="clips")
    loggers = instantiate_loggers(cfg.get("logger"), cfg, resolved={"backbone": meta["backbone"]})
    values = {f"test/{SPLIT_NAME}/{name}": value for name, value in evaluation.result.mean.items()}
    for logger in loggers:
        logger.log_metrics(values, step=0)
    log_per_image_table(loggers, results)
    for logger in loggers:
        logger.finalize("success")
    log.info(
        "%d frames at %.2f frames/s (network and stabiliser); metrics: %s",
        evaluation.frames,
        evaluation.fps,
        out_dir / "metrics.json",
    )
    return doc
