"""Predict alpha mattes and cut-outs for photos, or for the frames of a video.

    p3m predict ckpt_path=PATH input=FILE_OR_DIR_OR_GLOB output=DIR [test_strategy=hybrid]
    p3m predict ckpt_path=PATH "input='my photos/a,b [1].jpg'" output=out   # Hydra quoting
    p3m predict ckpt_path=PATH input=clip.mp4 output=DIR [video_output=[webm,mp4]] [video.stabilizer=ofd]

Photos: writes DIR/alpha/<stem>.png and DIR/rgba/<stem>.png. A video (one file, told by its suffix:
.mp4 .avi .mov .mkv .webm .m4v; folders and globs are for images) is matted frame by frame, each
frame as a photo, the mattes smoothed by video.stabilizer, and writes per video_output (a list
writes several in one pass): mp4 (default) DIR/<stem>_alpha.mp4 and DIR/<stem>_composite.mp4 (the
frames over video_background), H.264; webm DIR/<stem>_rgba.webm (VP9 with alpha); prores
DIR/<stem>_rgba.mov (ProRes 4444 with alpha); frames lossless PNGs DIR/<stem>/alpha/000000.png and
DIR/<stem>/rgba/000000.png. Videos keep the input's timestamps and audio (docs/video.md).
Existing outputs are replaced only with overwrite=true. Exit status: 0 every input done; 1 some
inputs failed (listed in the log, with their count), the others are written; 2 user error (e.g. a
video FFmpeg cannot read), nothing done; 130 Ctrl-C (see src/p3m/utils/errors.py).

In a clone, ``python src/predict.py ...`` is the same command.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig
from torch import nn

from p3m.data.io import MIN_IMAGE_SIDE
from p3m.inference.loading import (
    MATTING_CHOICES,
    MATTING_TYPES,
    inference_precision,
    load_network,
    resolve_device,
)
from p3m.inference.matting import MattingSettings
from p3m.inference.predict_files import PredictionSummary, collect_inputs, output_paths, predict_files
from p3m.inference.predict_video import VideoJob, plan_video, predict_video, single_video
from p3m.utils.config_checks import ConfigCheck
from p3m.utils.conventions import IMAGE_SUFFIXES
from p3m.utils.errors import SettingError, UserError
from p3m.utils.files import check_output_dir, check_outputs
from p3m.utils.hydra_app import hydra_app
from p3m.utils.run import exit_for_failures, task_wrapper

log = logging.getLogger(__name__)
USAGE = "p3m predict ckpt_path=PATH input=FILE_OR_DIR_OR_GLOB output=DIR"

PREDICT_CHECK = ConfigCheck(
    types={
        **MATTING_TYPES,
        "max_short_side": int,
        "runtime": str,
        "overwrite": bool,
        "video_output": (str, list),
        "video_background": list,
        "video.stabilizer": str,
        "video.batch_size": int,
    },
    choices=MATTING_CHOICES,
    at_least={"max_short_side": MIN_IMAGE_SIDE},
    known_keys_only=True,
)


def run_prediction(cfg: DictConfig) -> PredictionSummary:
    """Predict ``cfg.input`` with ``cfg.ckpt_path`` into ``cfg.output`` (the predict config).

    The input is images (a file, a folder, a glob) or one video file, told apart by its suffix.
    """
    weights = "onnx_path" if cfg.get("runtime") == "onnx" else "ckpt_path"
    missing = [key for key in (weights, "input", "output") if cfg.get(key) in (None, "")]
    if missing:
        raise SettingError(f"set {', '.join(missing)}: {USAGE}")
    device = resolve_device(cfg.device)
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
        "predicting %s (%s frames, %dx%d, %.4g fps%s) with %s, stabilizer %s",
        video.path,
        video.frame_count or "unknown",
        video.width,
        video.height,
        float(video.fps),
        ", with audio" if video.has_audio else "",
        model,
        job.stabilizer.stabilizer,
    )
    summary = PredictionSummary(what="videos")
    try:
        frames = predict_video(net, job, settings)
    except OSError as err:
        summary.failed.append((video.path, str(err)))
        log.error("failed: %s (%s)", video.path, err)
        return summary
    summary.written.append(video.path)
    log.info("wrote the mattes of %d frames to %s", frames, " and ".join(map(str, job.outputs)))
    return summary


def _job(cfg: DictConfig) -> None:
    """The Hydra job; exits 1 when some inputs failed."""
    summary = task_wrapper(run_prediction, check=PREDICT_CHECK)(cfg)
    exit_for_failures(len(summary.failed), summary.what)


main = hydra_app("predict", _job)

if __name__ == "__main__":
    main()
