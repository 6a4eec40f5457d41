"""Loading a checkpoint for inference, and the evaluation task behind ``src/eval.py``."""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
import torchmetrics
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig
from torch import Tensor, nn

from src.deploy.onnx_session import OnnxP3MNet
from src.inference.evaluate import (
    Predictor,
    SplitResult,
    evaluate_split,
    generalisation_gap,
    metric_order,
    prediction_reader,
    unbatch,
)
from src.inference.report import print_table, write_reports
from src.models.checkpoints import load_model
from src.models.performance import to_channels_last
from src.models.test_time import infer_alpha
from src.utils.errors import MissingInputError, SettingError
from src.utils.instantiate import instantiate_loggers
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


def model_predictor(cfg: DictConfig, device: torch.device) -> tuple[Predictor, dict[str, Any]]:
    """Load the checkpoint and wrap it in the configured test-time strategy."""
    net, meta = load_network(cfg, device)
    precision = inference_precision(cfg)

    def predict(sample: Mapping[str, Any]) -> Tensor:
        image = unbatch(sample["image"]).to(device)
        return infer_alpha(net, image, cfg.test_strategy, cfg.resize_mode, precision=precision).alpha

    return predict, meta | {"strategy": cfg.test_strategy, "resize_mode": cfg.resize_mode}


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` (or ``cfg.pred_dir``) on every split; write reports to the run dir.

    Returns:
        The ``metrics.json`` document.
    """
    out_dir = Path(cfg.paths.output_dir)
    device = resolve_device(cfg.device)
    if cfg.get("pred_dir"):
        pred_dir = Path(str(cfg.pred_dir))
        if not pred_dir.is_dir():
            raise MissingInputError(
                f"pred_dir={pred_dir} is not a folder of <split>/<stem>.png or <stem>.png"
            )
        predict = prediction_reader(pred_dir)
        meta: dict[str, Any] = {"pred_dir": str(pred_dir), "checkpoint": None, "backbone": None}
        meta |= {"strategy": None, "resize_mode": None}
    else:
        predict, meta = model_predictor(cfg, device)

    datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg=False)
    datamodule.setup("test")
    meta |= {"data_root": str(datamodule.hparams.root), "device": str(device), "versions": _versions()}
    results: list[SplitResult] = []
    for split, loader in zip(datamodule.eval_splits, datamodule.test_dataloader(), strict=True):
        save_dir = out_dir / "predictions" / split.name if cfg.save_predictions else None
        results.append(evaluate_split(split.name, loader, predict, list(cfg.metrics), save_dir))

    doc = write_reports(results, meta, out_dir)
    print_table(results)
    log.info("Metrics: %s (per image: %s)", out_dir / "metrics.json", out_dir / "per_image.csv")
    loggers = instantiate_loggers(cfg.get("logger"), cfg)
    log_results(loggers, results, {split.name: split.prefix for split in datamodule.eval_splits})
    return doc


def log_results(
    loggers: Sequence[Logger], results: Sequence[SplitResult], prefixes: Mapping[str, str]
) -> None:
    """Send the numbers of metrics.json to the loggers, then close them.

    Means go to ``test/<split>/<metric>`` (``test/p/sad`` for the split with prefix ``val/p``), gaps to
    ``test/gap/<b>-<a>/<metric>``, and loggers that take tables (W&B) get the per-image metrics as
    the table ``test/per_image``.
    """
    if not loggers or not results:
        return
    short = {r.name: prefixes.get(r.name, r.name).rsplit("/", 1)[-1] for r in results}
    metrics = {f"test/{short[r.name]}/{k}": v for r in results for k, v in r.mean.items()}
    base = results[0]
    for other in results[1:]:
        key = f"test/gap/{short[other.name]}-{short[base.name]}"
        metrics |= {f"{key}/{k}": v for k, v in generalisation_gap(other, base).items()}
    names = metric_order(results)
    columns = ["split", "stem", *names]
    rows = [[r.name, stem, *(v.get(n) for n in names)] for r in results for stem, v in r.per_image.items()]
    for logger in loggers:
        logger.log_metrics(metrics)
        if hasattr(logger, "log_table"):  # WandbLogger
            logger.log_table(key="test/per_image", columns=columns, data=rows)
        logger.finalize("success")


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
