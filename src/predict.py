"""Predict alpha mattes and cut-outs for photos.

    python src/predict.py ckpt_path=PATH input=FILE_OR_DIR_OR_GLOB output=DIR [test_strategy=hybrid]
    python src/predict.py ckpt_path=PATH "input='my photos/a,b [1].jpg'" output=out   # Hydra quoting

Writes DIR/alpha/<stem>.png and DIR/rgba/<stem>.png (existing ones only with overwrite=true). Exit
code 1 when some images failed (they are listed at the end), see src/utils/errors.py.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import src  # noqa: F401  (sets PROJECT_ROOT for conf/paths)
from src.inference.predict_files import run_prediction
from src.utils.errors import EXIT_PARTIAL_FAILURE
from src.utils.run import task_wrapper


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; exits 1 when some images failed."""
    summary = task_wrapper(run_prediction)(cfg)
    if summary.failed:
        sys.exit(EXIT_PARTIAL_FAILURE)


if __name__ == "__main__":
    main()
