"""Train P3M-Net: ``p3m train [experiment=...] [group=option] [key=value]``.

Examples:
    p3m train data.root=/path/to/P3M-10k
    p3m train experiment=demo
    p3m train backbone=vitae trainer.devices=4           # DDP on 4 GPUs
    p3m train -m loss=paper,no_composition               # a grid multirun
    p3m train hparams_search=p3m_optuna                  # an Optuna sweep
    p3m train ckpt_path=latest                           # resume this task's newest run (docs/resume.md)
    p3m train train=false test=true ckpt_path=PATH       # evaluate a checkpoint

Exit status: 0 done; 2 user error (one message naming the setting or file); 143 terminated by
SIGTERM (last.ckpt saved: resume with ckpt_path=latest); 130 interrupted (Ctrl-C).

In a clone, ``python src/train.py ...`` is the same command.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, open_dict

from p3m.callbacks.last_checkpoint import find_best_checkpoint, find_last_checkpoint
from p3m.callbacks.logger_runs import CHECKPOINT_KEY as LOGGERS_KEY
from p3m.models.checkpoint_io import SafeCheckpointIO
from p3m.models.checkpoints import checkpoint_state, require_backbone
from p3m.models.performance import warn_if_bf16_is_emulated
from p3m.utils.allocator import keep_freed_memory
from p3m.utils.checkpoint_files import CheckpointError, read_checkpoint
from p3m.utils.config_checks import ConfigCheck
from p3m.utils.distributed import (
    dataloader_workers,
    devices_per_node,
    effective_batch_size,
    rank_seed,
    scaled_lr,
)
from p3m.utils.hydra_app import hydra_app
from p3m.utils.instantiate import instantiate_callbacks, instantiate_loggers
from p3m.utils.run import log_hyperparameters, metric_value, save_metrics, task_wrapper
from p3m.utils.run_dirs import multirun_job, resolve_ckpt_path

log = logging.getLogger(__name__)

RESUMED_CHECKPOINT_ENV = "P3M_RESUMED_CHECKPOINT"  # rank 0's resolved ckpt_path, for the DDP processes


# Keys whose wrong type or range would otherwise fail late (a bare TypeError mid-setup), checked up front.
TRAIN_CHECK = ConfigCheck(
    types={
        "seed": (int, type(None)),
        "train": bool,
        "test": bool,
        "keep_freed_memory": bool,
        "ckpt_path": (str, type(None)),
        "trainer.max_epochs": (int, type(None)),
        "trainer.min_epochs": (int, type(None)),
        "trainer.max_steps": int,
        "trainer.num_nodes": int,
        "trainer.accumulate_grad_batches": int,
        "trainer.check_val_every_n_epoch": (int, type(None)),
        "trainer.log_every_n_steps": int,
        "trainer.num_sanity_val_steps": int,
        "trainer.limit_train_batches": (float, type(None)),
        "trainer.limit_val_batches": (float, type(None)),
        "trainer.limit_test_batches": (float, type(None)),
        "trainer.val_check_interval": (int, float, type(None)),
        "trainer.gradient_clip_val": (float, type(None)),
        "data.batch_size": int,
        "data.num_workers": int,
        "data.train_size": (int, type(None)),
        "model.optimizer.lr": float,
    },
    at_least={
        "data.batch_size": 1,
        "data.num_workers": 0,
        "trainer.accumulate_grad_batches": 1,
        "trainer.num_nodes": 1,
        "model.optimizer.lr": 0,
    },
)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit (and optionally test) the model described by ``cfg``; returns the logged metrics."""
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    _size_dataloader_workers(cfg)
    _cpu_without_sync_batchnorm(cfg)
    _no_imagenet_weights_under_init_from(cfg)
    if cfg.get("keep_freed_memory") and keep_freed_memory():
        log.info("keep_freed_memory: freed memory is kept for reuse (src/p3m/utils/allocator.py)")
    ckpt_path = _checkpoint_to_resume(cfg)
    logger_runs: list[Any] = []  # where the resumed run logged: its W&B run, its CSV/TensorBoard folders
    if ckpt_path:  # a damaged or unsafe file fails now, naming it, not after the model and data are built
        resumed = read_checkpoint(ckpt_path, mmap=True)
        _check_resumed_backbone(resumed, ckpt_path, cfg)
        logger_runs = resumed.get(LOGGERS_KEY) or []

    model = hydra.utils.instantiate(cfg.model)
    datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg="composition" in model.loss.active_terms)
    callbacks = instantiate_callbacks(cfg.get("callbacks"))
    loggers = instantiate_loggers(cfg.get("logger"), cfg, continue_runs=logger_runs)
    # checkpoints written atomically beside their target and read back through our safe loader
    plugins = [*hydra.utils.instantiate(cfg.trainer.get("plugins") or []), SafeCheckpointIO()]
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers, plugins=plugins
    )
    if cfg.get("seed") is not None and trainer.world_size > 1:
        # every rank had the same seed for the model (DDP broadcasts rank 0's weights anyway); from here
        # on, ranks draw different augmentations, dropout masks and worker seeds
        L.seed_everything(rank_seed(cfg.seed, trainer.global_rank), workers=True, verbose=False)
    _log_batch_and_lr(cfg, trainer)
    warn_if_bf16_is_emulated(trainer)
    log_hyperparameters(cfg, model, trainer)

    if cfg.get("train"):
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = dict(trainer.callback_metrics)
    best, last = _checkpoint_paths(trainer)
    if cfg.get("test"):
        # after training: its best checkpoint; without training: the one given by ckpt_path
        test_ckpt = best or (None if cfg.get("train") else ckpt_path)
        trainer.test(model=model, datamodule=datamodule, ckpt_path=test_ckpt, weights_only=True)
        metrics.update(trainer.callback_metrics)
    if trainer.is_global_zero:
        save_metrics(metrics, cfg.paths.output_dir)
        log.info("Run directory: %s", trainer.default_root_dir)
        log.info("Best checkpoint: %s | last: %s", best or "(none)", last or "(none)")
        for logger in trainer.loggers:
            log.info("Logs (%s): %s", type(logger).__name__, logger.log_dir or logger.save_dir)
    return metrics


def _check_resumed_backbone(checkpoint: Any, path: str, cfg: DictConfig) -> None:
    """Refuse resuming weights of another backbone in one line (Lightning would list every missing key)."""
    backbone = cfg.get("backbone", {}).get("name")
    try:
        resumed = checkpoint_state(checkpoint, path)
    except CheckpointError:  # not P3M-Net weights we know: Lightning's restore says what does not fit
        return
    fix = f"set backbone={resumed.backbone} to resume it, or start a new run without ckpt_path"
    if backbone:
        require_backbone(resumed, str(backbone), f"ckpt_path={path}", fix=fix)


def _checkpoint_to_resume(cfg: DictConfig) -> str | None:
    """``ckpt_path`` resolved (``latest``: :func:`p3m.utils.run_dirs.resolve_ckpt_path`), once per run.

    The DDP processes Lightning launches run this task again, outside the multirun their job is part
    of: they take the checkpoint rank 0 chose (handed down in the environment) instead of looking
    for one themselves, which could find another job's. Processes started by SLURM or torchrun have
    no such hand-down and resolve it alike.
    """
    if int(os.environ.get("LOCAL_RANK", "0")) > 0 and RESUMED_CHECKPOINT_ENV in os.environ:
        return os.environ[RESUMED_CHECKPOINT_ENV] or None
    ckpt_path = resolve_ckpt_path(
        cfg.get("ckpt_path"), cfg.paths.log_dir, cfg.task_name, prefer="last", job=multirun_job()
    )
    os.environ[RESUMED_CHECKPOINT_ENV] = ckpt_path or ""
    return ckpt_path


def _cpu_without_sync_batchnorm(cfg: DictConfig) -> None:
    """Turn ``trainer.sync_batchnorm`` off on the CPU (torch's SyncBatchNorm needs GPUs), with a log line."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu and cfg.trainer.get("sync_batchnorm"):
        log.info("trainer.sync_batchnorm=true ignored: SyncBatchNorm runs on GPUs only")
        with open_dict(cfg):
            cfg.trainer.sync_batchnorm = False


def _no_imagenet_weights_under_init_from(cfg: DictConfig) -> None:
    """Skip the backbone's ImageNet file when ``model.init_from`` replaces every weight anyway."""
    backbone = cfg.get("backbone")
    if cfg.model.get("init_from") and backbone is not None and backbone.get("pretrained"):
        log.info(
            "model.init_from=%s: the backbone's ImageNet weights (backbone.pretrained=%s) are not loaded",
            cfg.model.init_from,
            backbone.pretrained,
        )
        with open_dict(cfg):
            cfg.backbone.pretrained = None


def _size_dataloader_workers(cfg: DictConfig) -> None:
    """Cap ``data.num_workers`` so the workers of every rank on a node fit its CPUs."""
    requested = cfg.data.get("num_workers")
    if not isinstance(requested, int):
        return
    sized = dataloader_workers(requested, devices_per_node(cfg.trainer.get("devices", 1)))
    if sized != requested:
        log.info("data.num_workers=%d capped at %d (CPUs available per process)", requested, sized)
        with open_dict(cfg):
            cfg.data.num_workers = sized


def _log_batch_and_lr(cfg: DictConfig, trainer: L.Trainer) -> None:
    """State the effective batch size and where the learning rate stands against the linear rule."""
    if not trainer.is_global_zero:
        return
    batch = effective_batch_size(
        cfg.data.batch_size, trainer.num_devices, trainer.num_nodes, trainer.accumulate_grad_batches
    )
    lr = cfg.model.get("optimizer", {}).get("lr")
    log.info(
        "effective batch %d = %d per device x %d devices x %d nodes x %d accumulation; lr %s "
        "(the paper: batch 8, lr 1e-5; linear scaling for this batch: %.3g)",
        batch,
        cfg.data.batch_size,
        trainer.num_devices,
        trainer.num_nodes,
        trainer.accumulate_grad_batches,
        lr,
        scaled_lr(batch),
    )


def _checkpoint_paths(trainer: L.Trainer) -> tuple[str, str]:
    """Best and last checkpoint of the fit (read before testing, which restores an older state)."""
    best, last = find_best_checkpoint(trainer), find_last_checkpoint(trainer)
    return (best.best_model_path if best else ""), (last.last_model_path if last else "")


def _job(cfg: DictConfig) -> float | None:
    """The Hydra job; returns the optimised (else the monitored) metric so sweepers can use it."""
    metrics = task_wrapper(train, check=TRAIN_CHECK, saves_on_sigterm=True)(cfg)
    checkpointing = cfg.get("callbacks", {}).get("model_checkpoint", {})
    return metric_value(metrics, cfg.get("optimized_metric") or checkpointing.get("monitor"))


main = hydra_app("train", _job)

if __name__ == "__main__":
    main()
