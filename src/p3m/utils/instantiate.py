"""Build callbacks and loggers from their config groups."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)

# The config groups that tag a run, so a W&B dashboard can group and filter by them.
TAG_GROUPS = ("backbone", "privacy", "augmentation", "loss")


def instantiate_callbacks(callbacks_cfg: DictConfig | None) -> list[Callback]:
    """Every entry of ``cfg.callbacks`` that has a ``_target_``."""
    callbacks: list[Callback] = []
    for name, cb_conf in (callbacks_cfg or {}).items():
        if isinstance(cb_conf, DictConfig) and "_target_" in cb_conf:
            log.info("Callback <%s>: %s", name, cb_conf._target_)
            callbacks.append(hydra.utils.instantiate(cb_conf))
    return callbacks


def wandb_has_credentials() -> bool:
    """True when an API key is configured (environment or ``wandb login``); never touches the network."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") == "online":
        return True
    try:
        import netrc

        hosts = netrc.netrc().hosts
    except (FileNotFoundError, OSError, netrc.NetrcParseError):
        return False
    return any("wandb" in host for host in hosts)


def run_tags(cfg: DictConfig, resolved: Mapping[str, str | None] | None = None) -> list[str]:
    """The run's tags plus ``<group>:<option>`` for backbone, privacy, augmentation and loss.

    Args:
        cfg: The run's config (its ``tags``).
        resolved: Options known only at run time, in place of Hydra's choice (eval's
            ``backbone=auto`` -> ``{"backbone": "swin"}``, the backbone read from the checkpoint).
    """
    tags = [str(t) for t in cfg.get("tags") or []]
    choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    choices |= resolved or {}
    tags += [f"{group}:{choices[group]}" for group in TAG_GROUPS if choices.get(group)]
    return tags


def run_name(cfg: DictConfig) -> str:
    """``<task_name>-<run dir>``, plus the sweep's overrides in a multirun: unique and readable on W&B."""
    task = str(cfg.get("task_name") or "run")
    if not HydraConfig.initialized():
        return task
    hydra_cfg = HydraConfig.get()
    output_dir = Path(cfg.paths.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        name = f"{task}-{output_dir.parent.name}-{output_dir.name}"
        overrides = getattr(hydra_cfg.job, "override_dirname", None)
        return f"{name}[{overrides}]" if overrides else name
    return f"{task}-{output_dir.name}"


def job_type() -> str:
    """The entry point's name (``train``, ``eval``) from Hydra, else ``train``."""
    if HydraConfig.initialized():
        name = str(getattr(HydraConfig.get().job, "name", None) or "")
        if name in ("train", "eval", "predict"):
            return name
    return "train"


def _configure_wandb(lg_conf: DictConfig, cfg: DictConfig, resolved: Mapping[str, str | None] | None) -> None:
    """Name, job type, tags and offline mode of a WandbLogger config (in place)."""
    with open_dict(lg_conf):
        lg_conf.tags = run_tags(cfg, resolved)
        if not lg_conf.get("name"):
            lg_conf.name = run_name(cfg)
        if not lg_conf.get("job_type"):
            lg_conf.job_type = job_type()
        # wandb's own offline mode instead of the logger's `offline` flag: Lightning refuses
        # offline=True with log_model, while wandb stores offline artifacts and uploads them on sync
        offline = bool(lg_conf.get("offline")) or not wandb_has_credentials()
        lg_conf.offline = False
        if offline and lg_conf.get("mode") is None:
            lg_conf.mode = "offline"
            if not wandb_has_credentials():
                log.warning(
                    "W&B: no API key configured, logging offline to %s/wandb "
                    "(upload later: wandb sync <that dir>/offline-run-*)",
                    lg_conf.save_dir,
                )


def instantiate_loggers(
    logger_cfg: DictConfig | None, cfg: DictConfig, resolved: Mapping[str, str | None] | None = None
) -> list[Logger]:
    """Every logger of ``cfg.logger``; W&B goes offline (one log line) when no API key is configured.

    ``resolved`` replaces Hydra's choice of a group in the W&B tags (see :func:`run_tags`).
    """
    loggers: list[Logger] = []
    for name, lg_conf in (logger_cfg or {}).items():
        if not (isinstance(lg_conf, DictConfig) and "_target_" in lg_conf):
            continue
        if "WandbLogger" in lg_conf._target_:
            _configure_wandb(lg_conf, cfg, resolved)
        log.info("Logger <%s>: %s", name, lg_conf._target_)
        loggers.append(hydra.utils.instantiate(lg_conf))
    return loggers
