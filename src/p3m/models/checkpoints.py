"""Read P3M-Net weights: our Lightning checkpoints, plain P3MNet state dicts and the authors' files.

Every file goes through the one safe reader (:func:`p3m.utils.checkpoint_files.read_checkpoint`,
``weights_only=True``); the authors' key names are converted by :mod:`p3m.models.official_format`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from p3m.models.components.backbones import list_backbones
from p3m.models.components.p3mnet import P3MNet
from p3m.models.expected_keys import expected_state, validate_state
from p3m.models.official_format import (
    convert_official_state_dict,
    describe_signatures,
    detect_official_arch,
    official_formats,
)
from p3m.utils.checkpoint_files import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)

LIGHTNING_PREFIX = "net."
OUR_PREFIXES = ("backbone.", "global_decoder.", "local_decoder.")
_SHOWN = 5  # how many offending keys an error lists


class CheckpointState(NamedTuple):
    """A checkpoint's weights in :class:`P3MNet` key names, and where they came from."""

    state_dict: dict[str, Tensor]
    backbone: str
    """Registered backbone name the weights belong to."""
    source: str
    """``lightning``, ``p3mnet`` (a bare P3MNet state dict) or ``official-<arch>``."""


def state_tensors(obj: Any, path: Path) -> dict[str, Tensor]:
    """The tensors of a loaded checkpoint's state dict (``module.`` prefixes dropped)."""
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"checkpoint {path} holds no state dict (found a {type(obj).__name__})")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}


def load_checkpoint_state(path: str | Path) -> CheckpointState:
    """Load weights from any supported checkpoint, renamed to :class:`P3MNet` keys.

    Supported: our Lightning checkpoints (``state_dict`` with ``net.``-prefixed keys), a bare
    ``P3MNet.state_dict()``, and the authors' ``{'state_dict': ...}`` or bare state dict; any of
    them with a DataParallel ``module.`` prefix.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        CheckpointError: The file cannot be read safely or matches no known format.
    """
    return checkpoint_state(read_checkpoint(path), path)


def checkpoint_state(checkpoint: Any, path: str | Path) -> CheckpointState:
    """:func:`load_checkpoint_state` of a checkpoint already read (e.g. memory-mapped) from ``path``."""
    path = Path(path)
    state = state_tensors(checkpoint, path)
    source = "p3mnet"
    if any(k.startswith(LIGHTNING_PREFIX) for k in state):
        # The LightningModule holds the network as `self.net`; other entries (loss buffers) are not ours.
        source = "lightning"
        state = {
            k.removeprefix(LIGHTNING_PREFIX).removeprefix("module."): v
            for k, v in state.items()
            if k.startswith(LIGHTNING_PREFIX)
        }
    if any(k.startswith(OUR_PREFIXES) for k in state):
        backbone = _match_backbone(state, path)
        validate_state(state, backbone, f"a P3MNet state dict with the {backbone} backbone ({path})")
        return CheckpointState(state, backbone, source)
    arch = detect_official_arch(state)
    if arch is None:
        raise CheckpointError(
            f"{path} matches no known checkpoint format: expected keys `net.backbone.*` (our Lightning "
            f"checkpoints), `backbone.*` / `global_decoder.*` (P3MNet.state_dict()) or the authors' keys "
            f"({describe_signatures(official_formats())}); found {sorted(state)[:_SHOWN]}"
        )
    converted = convert_official_state_dict(state, arch)
    return CheckpointState(converted, official_formats()[arch].backbone, f"official-{arch}")


def load_model(path: str | Path, backbone: str = "auto") -> P3MNet:
    """Build a :class:`P3MNet` from a checkpoint, ready for inference (eval mode, fp32, contiguous).

    Args:
        path: Any checkpoint :func:`load_checkpoint_state` reads.
        backbone: A registered backbone name to insist on, or ``"auto"`` to take the checkpoint's.
    """
    checkpoint = load_checkpoint_state(path)
    if backbone != "auto":
        require_backbone(checkpoint, backbone, path, fix="set backbone=auto")
    model = P3MNet(checkpoint.backbone)
    model.load_state_dict(checkpoint.state_dict)
    log.info("loaded %s P3M-Net weights (%s) from %s", checkpoint.backbone, checkpoint.source, path)
    return model.float().eval().to(memory_format=torch.contiguous_format)


def require_backbone(checkpoint: CheckpointState, backbone: str, path: str | Path, fix: str) -> None:
    """Refuse ``checkpoint`` unless its weights are those of ``backbone``, saying which it holds.

    Raises:
        CheckpointError: "<path> holds a swin P3M-Net, not resnet34: <fix>".
    """
    if checkpoint.backbone != backbone:
        raise CheckpointError(f"{path} holds a {checkpoint.backbone} P3M-Net, not {backbone}: {fix}")


def _match_backbone(state: Mapping[str, Tensor], path: Path) -> str:
    keys = {k for k in state if k.startswith("backbone.")}
    for name in list_backbones():
        if keys == {k for k in expected_state(name).shapes if k.startswith("backbone.")}:
            return name
    raise CheckpointError(
        f"{path}: the backbone.* weights match no registered backbone ({', '.join(list_backbones())}); "
        f"first keys {sorted(keys)[:_SHOWN]}"
    )
