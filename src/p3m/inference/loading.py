"""Loading a network for inference: a checkpoint (ours or the authors') or an exported ONNX graph."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import torch
from omegaconf import DictConfig
from torch import nn

from p3m.inference.onnx_session import OnnxP3MNet
from p3m.models.checkpoints import load_model
from p3m.models.performance import to_channels_last
from p3m.models.test_time import RESIZE_MODES, STRATEGIES
from p3m.utils.config_checks import TypeSpec
from p3m.utils.errors import SettingError
from p3m.utils.run_dirs import resolve_ckpt_path

log = logging.getLogger(__name__)


def resolve_device(name: str, key: str = "device") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given, if this machine has it.

    Raises:
        SettingError: not a device name, or a CUDA device this machine does not have (checked here,
            before a model is loaded onto it).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise SettingError(f"{key}={name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise SettingError(f"{key}={name}: this machine has {have}; use {key}=cpu or {key}=auto")
    return device


def backbone_choice(cfg: DictConfig) -> str:
    """``cfg.backbone`` as a name: the backbone group's option (``backbone=swin``) or a plain string."""
    choice = cfg.get("backbone") or "auto"
    return str(choice.get("name", "auto")) if isinstance(choice, Mapping) else str(choice)


# The ``precision`` key of eval/predict: None runs the network in fp32 (the papers' numbers).
PRECISIONS: dict[str, torch.dtype | None] = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
RUNTIMES = ("torch", "onnx")
# The test-time keys of eval, predict and the demo, checked (ConfigCheck) before anything loads.
MATTING_TYPES: dict[str, TypeSpec] = {
    "ckpt_path": (str, type(None)),
    "test_strategy": str,
    "resize_mode": str,
    "precision": (int, str),
    "channels_last": bool,
    "device": str,
}
MATTING_CHOICES: dict[str, tuple[str, ...]] = {
    "test_strategy": STRATEGIES,
    "resize_mode": RESIZE_MODES,
    "precision": tuple(PRECISIONS),
    "runtime": RUNTIMES,
}


def inference_precision(cfg: DictConfig) -> torch.dtype | None:
    """``cfg.precision`` (32 | bf16 | 16) as the autocast dtype of :func:`infer_alpha`."""
    value = str(cfg.get("precision", 32))
    if value not in PRECISIONS:
        raise SettingError(f"precision={value!r}: expected one of {' | '.join(PRECISIONS)}")
    return PRECISIONS[value]


def load_network(cfg: DictConfig, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
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
        session = _load_onnx(cfg, device, torch_only=precision is not None or channels_last)
        # an OnnxP3MNet is called as the module is and gives the same outputs: it stands in for it
        return cast(nn.Module, session), settings | {"checkpoint": str(cfg.onnx_path), "backbone": "onnx"}
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
            "`p3m export ckpt_path=CKPT format=onnx output=FILE.onnx`"
        )
    if torch_only:
        raise SettingError(
            "precision and channels_last apply to runtime=torch; an ONNX graph runs as exported"
        )
    providers = None if device.type == "cuda" else ["CPUExecutionProvider"]
    return OnnxP3MNet(str(cfg.onnx_path), providers=providers)
