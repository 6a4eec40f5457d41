"""Build callbacks and loggers from their config groups."""

from __future__ import annotations

import logging
import os

import hydra
from hydra.core.hydra_config import HydraConfig
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


def run_tags(cfg: DictConfig) -> list[str]:
    """The run's tags plus ``<group>:<option>`` for backbone, privacy, augmentation and loss."""
    tags = [str(t) for t in cfg.get("tags") or []]
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    tags += [f"{group}:{choices[group]}" for group in TAG_GROUPS if choices.get(group)]
    return tags


def instantiate_loggers(logger_cfg: DictConfig | None, cfg: DictConfig) -> list[Logger]:
    """Every logger of ``cfg.logger``; W&B goes offline (one log line) when no API key is configured."""
    loggers: list[Logger] = []
    for name, lg_conf in (logger_cfg or {}).items():
        if not (isinstance(lg_conf, DictConfig) and "_target_" in lg_conf):
            continue
        if "WandbLogger" in lg_conf._target_:
            with open_dict(lg_conf):
                lg_conf.tags = run_tags(cfg)
                if not lg_conf.get("offline") and not wandb_has_credentials():
                    lg_conf.offline = True
                    log.warning(
                        "W&B: no API key configured, logging offline to %s (sync later: wandb sync <dir>)",
                        lg_conf.save_dir,
                    )
        log.info("Logger <%s>: %s", name, lg_conf._target_)
        loggers.append(hydra.utils.instantiate(lg_conf))
    return loggers
