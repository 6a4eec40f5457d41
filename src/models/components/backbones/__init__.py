"""Registered P3M-Net encoders. Importing this package registers every backbone."""

from src.models.components.backbones.base import (
    Backbone,
    DecoderSpec,
    EncoderFeatures,
    EncoderState,
)
from src.models.components.backbones.registry import create_backbone, list_backbones, register_backbone

__all__ = [
    "Backbone",
    "DecoderSpec",
    "EncoderFeatures",
    "EncoderState",
    "create_backbone",
    "list_backbones",
    "register_backbone",
]
