"""Predict alpha mattes and cut-outs for photos.

    python src/predict.py ckpt_path=PATH input=FILE_OR_DIR_OR_GLOB output=DIR [test_strategy=hybrid]
    python src/predict.py ckpt_path=PATH "input='my photos/a,b [1].jpg'" output=out   # Hydra quoting

Writes DIR/alpha/<stem>.png and DIR/rgba/<stem>.png (existing ones only with overwrite=true). Exit
status: 0 every image done; 1 some images failed (listed in the log, with their count), the others
are written; 2 user error, nothing done; 130 Ctrl-C (see src/utils/errors.py).
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
    },
    known_keys_only=True,
)


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; exits 1 when some images failed."""
    summary = task_wrapper(run_prediction, check=PREDICT_CHECK)(cfg)
    exit_for_failures(len(summary.failed), "images")


if __name__ == "__main__":
    main()
