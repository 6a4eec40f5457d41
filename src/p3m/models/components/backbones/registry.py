"""A timm-style registry of backbone factories: ``@register_backbone``, ``create_backbone``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p3m.models.components.backbones.base import Backbone

_REGISTRY: dict[str, Callable[..., Backbone]] = {}


def register_backbone(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
    """Register a factory under its function name (``resnet34``, ``swin``, ``vitae``)."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"backbone {fn.__name__!r} is registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_backbones() -> list[str]:
    """Names of every registered backbone, sorted."""
    return sorted(_REGISTRY)


def backbone_factory(name: str) -> Callable[..., Backbone]:
    """The factory registered as ``name``."""
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown backbone {name!r}; registered: {', '.join(list_backbones())} (set backbone=<name>)"
        )
    return _REGISTRY[name]


def create_backbone(name: str, **kwargs: Any) -> Backbone:
    """Build a registered backbone by name; keyword arguments go to its factory."""
    return backbone_factory(name)(**kwargs)
