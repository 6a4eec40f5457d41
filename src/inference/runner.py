"""The evaluation task behind ``src/eval.py``: build the predictor, score every split, report."""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from torch import Tensor

from src.inference.evaluate import Predictor, SplitResult, _first, evaluate_split, prediction_reader
from src.inference.report import print_table, write_reports
from src.inference.test_time import infer_alpha
from src.utils.instantiate import instantiate_loggers
from src.utils.run_dirs import resolve_ckpt_path

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def model_predictor(cfg: DictConfig, device: torch.device) -> tuple[Predictor, dict[str, Any]]:
    """Load the checkpoint and wrap it in the configured test-time strategy."""
    from src.models.checkpoints import load_model

    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.log_dir, "train", prefer="best")
    if not ckpt_path:
        raise ValueError(
            "set ckpt_path=PATH (a checkpoint to evaluate) or pred_dir=DIR (existing predictions)"
        )
    net = load_model(ckpt_path, backbone=cfg.backbone).to(device)

    def predict(sample: Mapping[str, Any]) -> Tensor:
        image = _first(sample["image"]).to(device)
        return infer_alpha(net, image, cfg.test_strategy, cfg.resize_mode).alpha

    backbone = type(net.backbone).__name__
    return predict, {"checkpoint": ckpt_path, "backbone": backbone}


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` (or ``cfg.pred_dir``) on every split; write reports to the run dir."""
    out_dir = Path(cfg.paths.output_dir)
    device = resolve_device(cfg.device)
    if cfg.get("pred_dir"):
        predict, meta = prediction_reader(Path(cfg.pred_dir)), {"pred_dir": str(cfg.pred_dir)}
    else:
        predict, meta = model_predictor(cfg, device)
    meta |= {
        "strategy": None if cfg.get("pred_dir") else cfg.test_strategy,
        "resize_mode": None if cfg.get("pred_dir") else cfg.resize_mode,
        "device": str(device),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
    }

    datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg=False)
    datamodule.setup("test")
    results: list[SplitResult] = []
    for split, loader in zip(datamodule.eval_splits, datamodule.test_dataloader(), strict=True):
        save_dir = out_dir / "predictions" / split.name if cfg.save_predictions else None
        results.append(evaluate_split(split.name, loader, predict, list(cfg.metrics), save_dir))

    doc = write_reports(results, meta, out_dir)
    print_table(results)
    log.info("Metrics: %s (per image: %s)", out_dir / "metrics.json", out_dir / "per_image.csv")
    _log_to_loggers(cfg, results, doc)
    return doc


def _log_to_loggers(cfg: DictConfig, results: list[SplitResult], doc: dict[str, Any]) -> None:
    loggers = instantiate_loggers(cfg.get("logger"), cfg)
    if not loggers:
        return
    prefixes = {s["name"]: s["prefix"] for s in cfg.data.eval_splits}
    flat = {
        f"test/{prefixes.get(r.name, r.name).split('/')[-1]}/{k}": v
        for r in results
        for k, v in r.mean.items()
    }
    for label, gap in doc["gap"].items():
        flat |= {f"test/gap/{k}": v for k, v in gap.items()} if label else {}
    for logger in loggers:
        logger.log_metrics(flat)
        if hasattr(logger, "log_table"):
            names = sorted({k for r in results for v in r.per_image.values() for k in v})
            rows = [
                [r.name, stem, *(v.get(n) for n in names)] for r in results for stem, v in r.per_image.items()
            ]
            logger.log_table(key="test/per_image", columns=["split", "stem", *names], data=rows)
        logger.finalize("success")
