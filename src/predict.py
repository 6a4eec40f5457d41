"""Predict alpha mattes and cut-outs for photos.

    python src/predict.py ckpt_path=PATH input=FILE_OR_DIR_OR_GLOB output=DIR [test_strategy=hybrid]

Writes DIR/alpha/<stem>.png and DIR/rgba/<stem>.png. The exit code is the number of images that
failed (capped at 255); they are listed at the end.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import src  # noqa: F401  (sets PROJECT_ROOT for conf/paths)
from src.inference.predict_files import collect_inputs, predict_files
from src.inference.runner import resolve_device
from src.utils.run_dirs import resolve_ckpt_path

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path="../conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    from src.models.checkpoints import load_model

    if not cfg.get("ckpt_path") or not cfg.get("input") or not cfg.get("output"):
        raise SystemExit("usage: python src/predict.py ckpt_path=PATH input=FILE_OR_DIR_OR_GLOB output=DIR")
    device = resolve_device(cfg.device)
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, cfg.paths.log_dir, "train", prefer="best")
    net = load_model(ckpt_path, backbone=cfg.backbone).to(device)
    paths = collect_inputs(cfg.input)
    out_dir = Path(cfg.output)
    failed = predict_files(
        net, paths, out_dir, cfg.test_strategy, cfg.resize_mode, cfg.max_short_side, device
    )
    log.info(
        "wrote %d mattes to %s/alpha and cut-outs to %s/rgba", len(paths) - len(failed), out_dir, out_dir
    )
    for path, reason in failed:
        log.error("failed: %s (%s)", path, reason)
    if failed:
        sys.exit(min(len(failed), 255))


if __name__ == "__main__":
    main()
