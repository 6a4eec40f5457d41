"""Predict alpha mattes and cut-outs for photos, or for the frames of a video.

    python src/predict.py ckpt_path=PATH input=FILE_OR_DIR_OR_GLOB output=DIR [test_strategy=hybrid]
    python src/predict.py ckpt_path=PATH "input='my photos/a,b [1].jpg'" output=out   # Hydra quoting
    python src/predict.py ckpt_path=PATH input=clip.mp4 output=DIR [video_output=frames]

Photos: writes DIR/alpha/<stem>.png and DIR/rgba/<stem>.png. A video (one file, told by its suffix:
.mp4 .avi .mov .mkv .webm .m4v; folders and globs are for images) is matted frame by frame, each
frame as a photo, and writes DIR/<stem>_alpha.mp4 (the matte) and DIR/<stem>_composite.mp4 (the
frames over video_background), mp4v at the input's frame rate: lossy. With video_output=frames it
writes lossless PNGs instead: DIR/<stem>/alpha/000000.png and DIR/<stem>/rgba/000000.png (RGBA).
Existing outputs are replaced only with overwrite=true. Exit status: 0 every input done; 1 some
inputs failed (listed in the log, with their count), the others are written; 2 user error (e.g. a
video OpenCV cannot read), nothing done; 130 Ctrl-C (see src/utils/errors.py).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import src  # noqa: F401  (sets PROJECT_ROOT for conf/paths)
from src.inference.predict_files import run_prediction
from src.utils.config_checks import ConfigCheck
from src.utils.run import exit_for_failures, task_wrapper

PREDICT_CHECK = ConfigCheck(
    types={
        "ckpt_path": (str, type(None)),
        "test_strategy": str,
        "resize_mode": str,
        "max_short_side": int,
        "precision": (int, str),
        "channels_last": bool,
        "runtime": str,
        "device": str,
        "overwrite": bool,
        "video_output": str,
        "video_background": list,
    },
    known_keys_only=True,
)


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; exits 1 when some inputs failed."""
    summary = task_wrapper(run_prediction, check=PREDICT_CHECK)(cfg)
    exit_for_failures(len(summary.failed), summary.what)


if __name__ == "__main__":
    main()
