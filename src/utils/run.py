"""What every entry point does around its task: seeding, logging the config, closing loggers."""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
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
    params["trainer/world_size"] = trainer.world_size
    batch_size = cfg.get("data", {}).get("batch_size")
    if isinstance(batch_size, int):
        params["data/effective_batch_size"] = (
            batch_size * trainer.world_size * trainer.accumulate_grad_batches
        )
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def metric_value(metrics: dict[str, Any], name: str | None) -> float | None:
    """The float value of ``name`` in ``metrics`` (for Hydra sweepers), or None when absent."""
    if not name or name not in metrics:
        return None
    return float(metrics[name])


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Plain floats of the scalar entries of ``metrics`` (tensors included), sorted by name."""
    out: dict[str, float] = {}
    for name in sorted(metrics):
        value = metrics[name]
        try:
            out[name] = float(value)
        except (TypeError, ValueError, RuntimeError):  # non-scalar tensors and other objects
            continue
    return out


def save_metrics(metrics: Mapping[str, Any], output_dir: str | Path, filename: str = "metrics.json") -> Path:
    """Write the final metrics of a run as JSON (NaN/Inf as null) into its directory; returns the path."""
    path = Path(output_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: (v if math.isfinite(v) else None) for k, v in scalar_metrics(metrics).items()}
    path.write_text(json.dumps(clean, indent=2) + "\n")
    return path
