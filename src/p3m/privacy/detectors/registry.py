"""A registry of face detector factories: ``@register_detector``, ``create_detector``, ``list_detectors``.

Factories are registered by name when their module is imported; the optional packages a detector
needs are imported only when it is *created*, so every detector is listed even where it cannot run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from p3m.privacy.detectors.base import FaceDetector

_REGISTRY: dict[str, Callable[..., FaceDetector]] = {}


def register_detector(name: str) -> Callable[[Callable[..., FaceDetector]], Callable[..., FaceDetector]]:
    """Register a detector factory under ``name`` (used as ``detector=<name>`` in conf/anonymize.yaml)."""

    def decorator(fn: Callable[..., FaceDetector]) -> Callable[..., FaceDetector]:
        if name in _REGISTRY:
            raise ValueError(f"face detector {name!r} is registered twice")
        _REGISTRY[name] = fn
        return fn

    return decorator


def list_detectors() -> list[str]:
    """Names of every registered face detector, sorted."""
    return sorted(_REGISTRY)


def create_detector(name: str, **kwargs: Any) -> FaceDetector:
    """Build a registered detector; keyword arguments go to its factory.

    Raises:
        KeyError: ``name`` is not registered.
        DetectorUnavailableError: its optional packages or model file are missing (the message says
            how to install them).
    """
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown face detector {name!r}; registered: {', '.join(list_detectors())} (set detector=<name>)"
        )
    return _REGISTRY[name](**kwargs)
