"""What a registered backbone's P3M-Net state dict holds: its keys and shapes, checked against a file's.

Both checkpoint readers need it: :mod:`p3m.models.checkpoints` to tell which backbone a state dict
belongs to, and :mod:`p3m.models.official_format` to check a converted official file.
"""

from __future__ import annotations

import functools
import logging
import typing
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from p3m.models.components.backbones import Backbone, backbone_factory, create_backbone
from p3m.models.components.p3mnet import P3MNet
from p3m.utils.checkpoint_files import CheckpointError

log = logging.getLogger(__name__)

_SHOWN = 5  # how many offending keys an error lists


def backbone_class(name: str) -> type[Backbone]:
    """The class a registered backbone factory builds: its return annotation, else a (cached) build."""
    # Reading the factory's annotation is free, building Swin-T is not.
    factory = backbone_factory(name)
    try:
        cls = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve: fall back to building one
        cls = None
    if isinstance(cls, type) and issubclass(cls, Backbone):
        return cls
    return expected_state(name).cls


class ExpectedState(NamedTuple):
    cls: type[Backbone]
    shapes: dict[str, torch.Size]
    """Every key of ``P3MNet(name).state_dict()`` with its shape."""


@functools.cache
def expected_state(name: str) -> ExpectedState:
    """The class of backbone ``name`` and the key shapes of its P3M-Net's state dict."""
    # Only the class, the keys and the shapes are needed: build on the meta device (no memory, no
    # init cost), or for real if the backbone's constructor cannot run there.
    try:
        with torch.device("meta"):
            backbone = create_backbone(name)
    except Exception:
        log.debug("backbone %s cannot be built on the meta device; building it on CPU", name, exc_info=True)
        backbone = create_backbone(name)
    with torch.device("meta"):
        net = P3MNet(backbone)
    return ExpectedState(type(backbone), {k: v.shape for k, v in net.state_dict().items()})


def validate_state(state: Mapping[str, Tensor], backbone: str, expected: str) -> None:
    """Raise naming the missing, unexpected and misshapen keys of ``state`` (``expected`` describes it)."""
    shapes = expected_state(backbone).shapes
    missing = sorted(shapes.keys() - state.keys())
    unexpected = sorted(state.keys() - shapes.keys())
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(s)}"
        for k, s in shapes.items()
        if k in state and state[k].shape != s
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys {missing[:_SHOWN]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys {unexpected[:_SHOWN]}")
    if wrong:
        problems.append(f"{len(wrong)} tensors of the wrong shape {wrong[:_SHOWN]}")
    if problems:
        raise CheckpointError(f"weights do not fit {expected}: " + "; ".join(problems))
