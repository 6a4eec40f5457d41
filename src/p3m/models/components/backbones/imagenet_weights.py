"""Loading the authors' ImageNet backbone files into the Swin-T and ViTAE-S encoders.

The files hold the encoder part of the official model under the official key names (the manifest's
``encoder.*`` keys without ``encoder.``), inside a container that depends on where they came from:
ViTAE-S under ``state_dict_ema`` (the official loader reads exactly that), Swin-T under ``model`` or
``state_dict`` (the Swin training code's layout) or as a bare state dict. A ``module.`` prefix
(DataParallel) and an ``encoder.`` prefix (a whole P3M-Net checkpoint) are accepted too.

A backbone using :func:`load_encoder_file` provides ``official_encoder_key`` (official -> our key),
``official_unused`` (regexes of official keys to skip: classifiers, derived buffers),
``pretrained_containers`` and, optionally, ``complete_official_state`` (adds what official files never
hold, e.g. the Performer's random features).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from p3m.utils.checkpoint_files import read_checkpoint
from p3m.utils.docs import WHERE_TO_GET

log = logging.getLogger(__name__)


def rename_official_key(key: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    """Apply the first ``(pattern, replacement)`` rule that fully matches ``key`` (``encoder.`` optional)."""
    key = key.removeprefix("encoder.")
    for pattern, replacement in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return match.expand(replacement)
    return None


@dataclass
class EncoderLoadReport:
    """What :func:`load_encoder_file` did."""

    path: Path
    container: str | None
    """Key of the dict the weights were under (None for a bare state dict)."""
    loaded: int = 0
    """Tensors copied into the encoder."""
    missing: list[str] = field(default_factory=list)
    """Our keys the file did not provide (left as initialised)."""
    unexpected: list[str] = field(default_factory=list)
    """File keys that match nothing in the encoder."""
    ignored: list[str] = field(default_factory=list)
    """File keys skipped on purpose (unused classifier, derived buffers, non-encoder parts)."""
    completed: list[str] = field(default_factory=list)
    """Our keys official files never hold, filled by the backbone (e.g. seeded random features)."""


def _unwrap(obj: object, containers: tuple[str, ...], path: Path) -> tuple[dict[str, Tensor], str | None]:
    if isinstance(obj, Mapping):
        for name in containers:
            if isinstance(obj.get(name), Mapping):
                return dict(obj[name]), name
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return dict(obj), None
    found = sorted(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
    raise ValueError(
        f"{path} is not an encoder weights file: expected a state dict, bare or under one of "
        f"{', '.join(containers)}; found {found}"
    )


def load_encoder_file(backbone: nn.Module, path: str | Path) -> EncoderLoadReport:
    """Load an ImageNet (or whole P3M-Net) official file into ``backbone``'s encoder weights.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file holds no weights of this encoder, or a tensor has the wrong shape.
    """
    path = Path(path)
    name = type(backbone).__name__
    if not path.is_file():
        raise FileNotFoundError(
            f"{name} ImageNet weights not found at {path}: set backbone.pretrained=<file> or null "
            f"({WHERE_TO_GET})"
        )
    declared: Any = backbone  # its class attributes of the official-key contract (module docstring)
    obj = read_checkpoint(path)
    state, container = _unwrap(obj, tuple(declared.pretrained_containers), path)
    report = EncoderLoadReport(path=path, container=container)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("encoder.") for k in state):
        # A whole P3M-Net checkpoint: keep the encoder, report the rest as ignored.
        report.ignored += [k for k in state if not k.startswith("encoder.")]
        state = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}

    own = backbone.state_dict()
    converted: dict[str, Tensor] = {}
    for key, tensor in state.items():
        if any(re.fullmatch(pattern, key) for pattern in declared.official_unused):
            report.ignored.append(key)
            continue
        ours = declared.official_encoder_key(key)
        if ours is None and key in own:
            ours = key  # a file saved from our own encoder
        if ours is None or ours not in own:
            report.unexpected.append(key)
            continue
        if tensor.shape != own[ours].shape:
            raise ValueError(
                f"{path}: {key} has shape {tuple(tensor.shape)}, "
                f"{name} needs {tuple(own[ours].shape)} for {ours}"
            )
        converted[ours] = tensor
    if not converted:
        raise ValueError(
            f"{path} holds no {name} weights: expected keys such as {next(iter(own))}, "
            f"found {sorted(state)[:5]}"
        )
    complete = getattr(backbone, "complete_official_state", None)
    if complete is not None:
        before = set(converted)
        converted = complete(converted)
        report.completed = sorted(set(converted) - before)
    result = backbone.load_state_dict(converted, strict=False)
    report.loaded = len(converted) - len(report.completed)
    report.missing = list(result.missing_keys)
    report.unexpected += list(result.unexpected_keys)
    log.info(
        "%s: loaded %d tensors from %s%s; ignored %d (%s)",
        name,
        report.loaded,
        path,
        f" [{container}]" if container else "",
        len(report.ignored),
        ", ".join(report.ignored[:3]) + (" ..." if len(report.ignored) > 3 else ""),
    )
    if report.missing or report.unexpected:
        log.warning(
            "%s weights %s: %d missing keys %s, %d unexpected keys %s",
            name,
            path,
            len(report.missing),
            report.missing[:5],
            len(report.unexpected),
            report.unexpected[:5],
        )
    return report
