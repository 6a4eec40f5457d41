"""Train P3M-Net: ``python src/train.py [experiment=...] [group=option] [key=value]``.

Examples:
    python src/train.py data.root=/path/to/P3M-10k
    python src/train.py experiment=demo
    python src/train.py backbone=vitae trainer.devices=4
    python src/train.py -m loss=paper,no_composition
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
import lightning as L
from omegaconf import DictConfig

import src  # noqa: F401  (sets PROJECT_ROOT for conf/paths)
from src.utils.instantiate import instantiate_callbacks, instantiate_loggers
from src.utils.run import log_hyperparameters, metric_value, task_wrapper
from src.utils.run_dirs import resolve_ckpt_path

log = logging.getLogger(__name__)


@task_wrapper
def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) the model described by ``cfg``; returns the logged metrics."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    model = hydra.utils.instantiate(cfg.model)
    datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg="composition" in model.loss.active_terms)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    loggers = instantiate_loggers(cfg.get("logger"), cfg)
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    log_hyperparameters(cfg, model, trainer)

    if cfg.get("train"):
        ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.log_dir, cfg.task_name, prefer="last")
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = dict(trainer.callback_metrics)
    best, last = _checkpoint_paths(trainer)
    if cfg.get("test"):
        trainer.test(model=model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update(trainer.callback_metrics)
    if trainer.is_global_zero:
        log.info("Run directory: %s", trainer.default_root_dir)
        log.info("Best checkpoint: %s | last: %s", best or "(none)", last or "(none)")
        for logger in trainer.loggers:
            log.info("Logs (%s): %s", type(logger).__name__, logger.log_dir or logger.save_dir)
    return metrics


def _checkpoint_paths(trainer: L.Trainer) -> tuple[str, str]:
    """Best and last checkpoint of the fit (read before testing, which restores an older state)."""
    ckpt = trainer.checkpoint_callback
    if ckpt is None:
        return "", ""
    return ckpt.best_model_path, getattr(ckpt, "last_model_path", "")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the monitored metric so sweepers can optimise it."""
    metrics = train(cfg)
    monitor = cfg.get("callbacks", {}).get("model_checkpoint", {}).get("monitor")
    return metric_value(metrics, monitor)


if __name__ == "__main__":
    main()
