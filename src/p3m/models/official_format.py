"""The authors' checkpoint format: which official files a registered backbone reads, and their keys renamed.

Key conversion is split in two:

* The **encoder** keys are the backbone's business. A backbone class that can read the authors'
  checkpoints declares (see :class:`OfficialEncoderKeys`)::

      official_arch = "r34"                         # the authors' name for the variant
      official_signatures = ("resnet.conv1.weight",)  # any of these keys identifies the format
      official_decoder_prefix = ""                  # "decoder." for Swin-T / ViTAE-S
      official_unused = (r"resnet\\.fc\\..+",)        # regexes of keys to drop (unused classifier)

      @classmethod
      def official_encoder_key(cls, key: str) -> str | None: ...  # key inside our backbone

      @classmethod  # optional: add what official files never hold (ViTAE's Performer features)
      def complete_official_state(cls, state: dict[str, Tensor]) -> dict[str, Tensor]: ...

  Registering the backbone is all it takes; nothing here names a backbone. The factory's return
  annotation names the class, so formats are found without building anything.
* The **decoder and integration-module** keys are the same in every variant
  (``decoder4_g.0.weight``, ``tfi_3.transform.weight``, ``decoder_final_l.bias`` ...) and are
  mapped by :func:`official_decoder_key`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import ClassVar, NamedTuple, Protocol, cast

import torch
from torch import Tensor

from p3m.models.components.backbones import list_backbones
from p3m.models.expected_keys import backbone_class, validate_state
from p3m.utils.checkpoint_files import CheckpointError

log = logging.getLogger(__name__)

_SHOWN = 5  # how many offending keys an error lists


class OfficialEncoderKeys(Protocol):
    """What a backbone class declares to read the authors' checkpoints (see the module docstring)."""

    official_arch: ClassVar[str]
    official_signatures: ClassVar[tuple[str, ...]]
    official_decoder_prefix: ClassVar[str]
    official_unused: ClassVar[tuple[str, ...]]

    @classmethod
    def official_encoder_key(cls, key: str) -> str | None:
        """Our key (relative to the backbone) for an official encoder key; None if not one."""

    # Optional: ``complete_official_state(cls, state) -> dict`` (a classmethod) receives the
    # converted encoder weights (keys relative to the backbone) and returns them with what official
    # files never hold added, e.g. ViTAE-S's Performer random features.


class OfficialFormat(NamedTuple):
    """One official checkpoint format and the registered backbone that reads it."""

    arch: str
    backbone: str
    """Registered backbone name."""
    encoder: type[OfficialEncoderKeys]
    """The backbone class, which maps the encoder keys."""


# Official integration-module parts -> ours (src/p3m/models/components/integration.py).
_INTEGRATION_PARTS = {
    "tfi": {"transform": "reduce", "conv1": "fuse", "bn1": "norm"},
    "sbfi": {"transform1": "reduce_decoder", "transform2": "reduce_skip", "conv1": "fuse", "bn1": "norm"},
    "dbfi": {
        "transform1": "reduce_decoder",
        "transform2": "reduce_deep",
        "conv1": "fuse",
        "bn1": "norm",
        "conv2": "side",
    },
}
_INTEGRATION_DECODER = {"tfi": "local_decoder", "sbfi": "local_decoder", "dbfi": "global_decoder"}
_DECODER = {"g": "global_decoder", "l": "local_decoder"}


def official_decoder_key(key: str) -> str | None:
    """Our key for an official decoder / integration-module key (without the variant's prefix).

    The official modules are numbered by depth from 4 (stride 32) down to 0 and ours by stage from
    0 (stride 32) up to 4, so ``decoder4_g`` is global stage 0 and ``tfi_3`` feeds local stage 1.
    Returns None for keys that are not decoder keys.
    """
    if m := re.fullmatch(r"decoder([0-4])_([gl])\.(.+)", key):
        return f"{_DECODER[m[2]]}.stages.{4 - int(m[1])}.convs.{m[3]}"
    if m := re.fullmatch(r"decoder_final_([gl])\.(.+)", key):
        return f"{_DECODER[m[1]]}.head.{m[2]}"
    if m := re.fullmatch(r"(tfi|sbfi|dbfi)_([0-4])\.(\w+)\.(.+)", key):
        part = _INTEGRATION_PARTS[m[1]].get(m[3])
        if part is not None:
            return f"{_INTEGRATION_DECODER[m[1]]}.stages.{4 - int(m[2])}.{m[1]}.{part}.{m[4]}"
    return None


def official_formats() -> dict[str, OfficialFormat]:
    """Every official format a registered backbone can read, by the authors' arch name."""
    formats = {}
    for name in list_backbones():
        cls = backbone_class(name)
        arch = getattr(cls, "official_arch", None)
        if arch is not None:
            # a class that declares official_arch declares the whole contract (module docstring)
            formats[arch] = OfficialFormat(arch, name, cast(type[OfficialEncoderKeys], cls))
    return formats


def detect_official_arch(keys: Iterable[str]) -> str | None:
    """The official arch (``r34``, ``swin``, ``vitae``) whose signature keys occur in ``keys``."""
    keys = {k.removeprefix("module.") for k in keys}
    for arch, fmt in official_formats().items():
        if any(signature in keys for signature in fmt.encoder.official_signatures):
            return arch
    return None


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor], arch: str | None = None
) -> dict[str, Tensor]:
    """Rename the authors' P3M-Net state dict to :class:`P3MNet` keys.

    Accepts a ``module.`` prefix. Keys the backbone declares unused (the ImageNet classifier) are
    dropped and logged; keys registered twice (r34's ``resnet.*`` / ``encoder0..4.*``) must agree.

    Args:
        state_dict: The official ``state_dict`` (the value under ``'state_dict'`` in their files).
        arch: ``r34``, ``swin``, ``vitae``...; None detects it from the keys.

    Raises:
        ValueError: Unknown format, keys that map nowhere, missing keys or wrong shapes.
    """
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    formats = official_formats()
    detected = detect_official_arch(state)
    arch = arch or detected
    if arch not in formats:
        what = "matches no official P3M-Net format" if arch is None else f"is not a known arch {arch!r}"
        raise CheckpointError(
            f"the state dict {what}: expected keys identifying one of "
            f"{describe_signatures(formats)}; found keys {sorted(state)[:_SHOWN]}"
        )
    if detected is not None and detected != arch:
        raise CheckpointError(f"expected the official {arch} format, but the keys are those of {detected}")
    fmt = formats[arch]
    prefix = fmt.encoder.official_decoder_prefix
    decoder: dict[str, Tensor] = {}
    encoder: dict[str, Tensor] = {}
    unused, unexpected = [], []
    for key, value in state.items():
        if any(re.fullmatch(pattern, key) for pattern in fmt.encoder.official_unused):
            unused.append(key)
            continue
        ours = official_decoder_key(key.removeprefix(prefix)) if key.startswith(prefix) else None
        target = decoder
        if ours is None:
            ours, target = fmt.encoder.official_encoder_key(key), encoder
        if ours is None:
            unexpected.append(key)
        elif ours not in target:
            target[ours] = value
        elif not torch.equal(target[ours], value):
            raise CheckpointError(f"official {arch} checkpoint: {key} and its alias for {ours} differ")
    if unexpected:
        raise CheckpointError(
            f"{len(unexpected)} keys do not belong to the official {arch} format: {unexpected[:_SHOWN]}"
        )
    if unused:
        log.info("ignored %d unused keys of the official %s file: %s", len(unused), arch, unused[:_SHOWN])
    complete = getattr(fmt.encoder, "complete_official_state", None)
    if complete is not None:  # buffers official files never hold (e.g. ViTAE's Performer features)
        encoder = complete(encoder)
    converted = {f"backbone.{k}": v for k, v in encoder.items()} | decoder
    validate_state(converted, fmt.backbone, f"the official {arch} format")
    return converted


def describe_signatures(formats: Mapping[str, OfficialFormat]) -> str:
    """The keys that identify each official format, for error messages."""
    return ", ".join(f"{arch}: {' or '.join(f.encoder.official_signatures)}" for arch, f in formats.items())
