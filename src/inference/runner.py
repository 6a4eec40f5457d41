"""Loading a checkpoint for inference, and the evaluation task behind ``src/eval.py``."""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import torch
import torchmetrics
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from src.deploy.onnx_session import OnnxP3MNet
from src.inference.evaluate import Predictor, prediction_reader
from src.inference.report import log_per_image_table, print_table, results_document, write_reports
from src.models.checkpoints import load_model
from src.models.evaluation import MatteEvaluationModule
from src.models.performance import to_channels_last
from src.models.test_time import infer_alpha
from src.utils.errors import MissingInputError, SettingError
from src.utils.instantiate import instantiate_loggers
from src.utils.run import log_hyperparameters
from src.utils.run_dirs import resolve_ckpt_path

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def backbone_choice(cfg: DictConfig) -> str:
    """``cfg.backbone`` as a name: the backbone group's option (``backbone=swin``) or a plain string."""
    choice = cfg.get("backbone") or "auto"
    return str(choice.get("name", "auto")) if isinstance(choice, Mapping) else str(choice)


# The ``precision`` key of eval/predict: None runs the network in fp32 (the papers' numbers).
PRECISIONS: dict[str, torch.dtype | None] = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
RUNTIMES = ("torch", "onnx")


def inference_precision(cfg: DictConfig) -> torch.dtype | None:
    """``cfg.precision`` (32 | bf16 | 16) as the autocast dtype of :func:`infer_alpha`."""
    value = str(cfg.get("precision", 32))
    if value not in PRECISIONS:
        raise SettingError(f"precision={value!r}: expected one of {' | '.join(PRECISIONS)}")
    return PRECISIONS[value]


def load_network(cfg: DictConfig, device: torch.device) -> tuple[nn.Module | OnnxP3MNet, dict[str, Any]]:
    """Load ``cfg.ckpt_path`` (``latest`` / ``latest:<task>`` expanded) for inference on ``device``,
    or ``cfg.onnx_path`` with ``runtime=onnx``; ``channels_last=true`` stores the weights NHWC.

    Returns:
        The network and ``{"checkpoint": path, "backbone": registered name}`` plus the runtime settings.
    """
    runtime, channels_last = str(cfg.get("runtime", "torch")), bool(cfg.get("channels_last", False))
    precision = inference_precision(cfg)  # checked before the (slow) load
    settings = {
        "runtime": runtime,
        "precision": str(cfg.get("precision", 32)),
        "channels_last": channels_last,
    }
    if runtime not in RUNTIMES:
        raise SettingError(f"runtime={runtime!r}: expected one of {' | '.join(RUNTIMES)}")
    if runtime == "onnx":
        net = _load_onnx(cfg, device, torch_only=precision is not None or channels_last)
        return net, settings | {"checkpoint": str(cfg.onnx_path), "backbone": "onnx"}
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.log_dir, "train", prefer="best")
    if not ckpt_path:
        raise SettingError(
            "set ckpt_path=PATH (a checkpoint to evaluate) or pred_dir=DIR (existing predictions)"
        )
    net = load_model(ckpt_path, backbone=backbone_choice(cfg)).to(device)
    if channels_last:
        to_channels_last(net)
    return net, settings | {"checkpoint": str(ckpt_path), "backbone": net.backbone_name}


def _load_onnx(cfg: DictConfig, device: torch.device, torch_only: bool) -> OnnxP3MNet:
    if not cfg.get("onnx_path"):
        raise SettingError(
            "runtime=onnx needs onnx_path=FILE.onnx; export one with "
            "`python src/export.py ckpt_path=CKPT format=onnx output=FILE.onnx`"
        )
    if torch_only:
        raise SettingError(
            "precision and channels_last apply to runtime=torch; an ONNX graph runs as exported"
        )
    providers = None if device.type == "cuda" else ["CPUExecutionProvider"]
    return OnnxP3MNet(str(cfg.onnx_path), providers=providers)


def trainer_device_settings(cfg: DictConfig) -> dict[str, Any]:
    """``device=`` as the trainer's settings: the one way eval.py places its work.

    ``auto`` leaves ``trainer.accelerator`` / ``trainer.devices`` as configured (several devices:
    ``trainer.devices=4``); ``cpu`` -> ``accelerator=cpu``; ``cuda`` -> ``accelerator=gpu``;
    ``cuda:1`` -> ``accelerator=gpu, devices=[1]``. A contradiction with ``trainer.*`` is refused.
    """
    name = str(cfg.get("device", "auto"))
    if name == "auto":
        return {}
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SettingError(f"device={name!r}: expected auto, cpu, cuda or cuda:N") from None
    accelerator = {"cuda": "gpu"}.get(device.type, device.type)
    configured = str(cfg.trainer.get("accelerator", "auto"))
    if configured not in ("auto", accelerator, device.type):
        raise SettingError(
            f"device={name} but trainer.accelerator={configured}: set one of them (device=auto leaves "
            "the trainer's settings)"
        )
    settings: dict[str, Any] = {"accelerator": accelerator}
    if device.index is not None:
        if cfg.trainer.get("devices", 1) not in (1, "1", "auto"):
            raise SettingError(
                f"device={name} names one device but trainer.devices={cfg.trainer.devices}: use "
                "trainer.devices=[i,j,...] for several"
            )
        settings["devices"] = [device.index]
    return settings


def build_predictor(cfg: DictConfig) -> tuple[Predictor, nn.Module | None, dict[str, Any]]:
    """What makes the mattes: existing ones (``pred_dir``), or a network with the test-time strategy.

    Returns:
        The predictor (an evaluation batch of one image -> its matte), the torch network it runs
        (for Lightning to place on the device; None otherwise), and the run's metadata.
    """
    if cfg.get("pred_dir"):
        pred_dir = Path(str(cfg.pred_dir))
        if not pred_dir.is_dir():
            raise MissingInputError(
                f"pred_dir={pred_dir} is not a folder of <split>/<stem>.png or <stem>.png"
            )
        meta = {"pred_dir": str(pred_dir), "checkpoint": None, "backbone": None}
        return prediction_reader(pred_dir), None, meta | {"strategy": None, "resize_mode": None}
    onnx = str(cfg.get("runtime", "torch")) == "onnx"
    # torch weights load on the CPU; Lightning moves the module to each rank's device
    net, meta = load_network(cfg, resolve_device(cfg.device) if onnx else torch.device("cpu"))
    precision = inference_precision(cfg)
    strategy, resize_mode = str(cfg.test_strategy), str(cfg.resize_mode)

    def predict(batch: Mapping[str, Any]) -> Tensor:
        return infer_alpha(net, batch["image"], strategy, resize_mode, precision=precision).alpha

    meta |= {"strategy": strategy, "resize_mode": resize_mode}
    return predict, net if isinstance(net, nn.Module) else None, meta


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` (or ``cfg.pred_dir``) on every split through ``trainer.test``.

    Runs on ``trainer.devices`` processes (DDP) with the single-device numbers: each image is scored
    once, the means are reduced from the metrics' sums and the per-image values gathered from every
    rank; rank 0 writes ``metrics.json`` and ``per_image.csv`` into the run directory.

    Returns:
        The ``metrics.json`` document (on every rank).
    """
    out_dir = Path(cfg.paths.output_dir)
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=False,  # set once the weights are loaded: W&B tags and config name the backbone loaded
        callbacks=[],
        enable_checkpointing=False,
        enable_model_summary=False,
        sync_batchnorm=False,  # evaluation uses the BatchNorm running statistics
        **trainer_device_settings(cfg),
    )
    if str(cfg.get("runtime", "torch")) == "onnx" and not cfg.get("pred_dir") and trainer.world_size > 1:
        raise SettingError(
            f"runtime=onnx runs on one device, not {trainer.world_size}: set trainer.devices=1 "
            "(or evaluate the checkpoint with runtime=torch on several)"
        )
    predict, net, meta = build_predictor(cfg)
    trainer.loggers = instantiate_loggers(cfg.get("logger"), cfg, resolved={"backbone": meta["backbone"]})
    datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg=False)
    module = MatteEvaluationModule(
        predict,
        net=net,
        metrics=list(cfg.metrics),
        save_dir=out_dir / "predictions" if cfg.save_predictions else None,
    )
    log_hyperparameters(cfg, module, trainer, resolved=_resolved_config(cfg, meta))
    trainer.test(module, datamodule=datamodule, verbose=False)
    results, gaps = module.test_results, module.test_gaps
    meta |= {
        "data_root": str(datamodule.hparams.root),
        "device": str(trainer.strategy.root_device),
        "processes": trainer.world_size,
        "versions": _versions(),
    }
    doc = results_document(results, gaps, meta)
    if trainer.is_global_zero:
        write_reports(results, doc, out_dir)
        print_table(results, gaps)
        log_per_image_table(trainer.loggers, results)
        log.info("Metrics: %s (per image: %s)", out_dir / "metrics.json", out_dir / "per_image.csv")
    return doc


def _resolved_config(cfg: DictConfig, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The config entries known only once the weights are loaded, for the loggers."""
    backbone = (
        OmegaConf.to_container(cfg.backbone, resolve=True) if OmegaConf.is_config(cfg.get("backbone")) else {}
    )
    return {
        "backbone": {**backbone, "name": meta["backbone"], "requested": backbone_choice(cfg)},
        "checkpoint": meta["checkpoint"],
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("p3m")
    except PackageNotFoundError:  # a checkout that is not installed
        ours = "unknown"
    return {
        "p3m": ours,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchmetrics": torchmetrics.__version__,
        "numpy": np.__version__,
    }
