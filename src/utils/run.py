"""What every entry point does around its task: seeding, logging the config, closing loggers."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def task_wrapper(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Run a task and always close W&B, so a crashed run does not hang a multirun."""

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception:
            log.exception("Task failed; the run directory keeps its log")
            raise
        finally:
            try:
                import wandb

                if wandb.run is not None:
                    wandb.finish()
            except ImportError:  # pragma: no cover - wandb is a dependency
                pass

    return wrapped


@rank_zero_only
def log_hyperparameters(cfg: DictConfig, model: LightningModule, trainer: Trainer) -> None:
    """Send the resolved config and the parameter counts to every logger."""
    if not trainer.loggers:
        return
    # the `hydra` node is only present in composed (test) configs and needs a running Hydra job
    params = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        for k, v in cfg.items()
        if k != "hydra"
    }
    params["model/params/total"] = sum(p.numel() for p in model.parameters())
    params["model/params/trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def metric_value(metrics: dict[str, Any], name: str | None) -> float | None:
    """The float value of ``name`` in ``metrics`` (for Hydra sweepers), or None when absent."""
    if not name or name not in metrics:
        return None
    return float(metrics[name])
