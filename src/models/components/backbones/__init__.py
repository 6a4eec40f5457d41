"""Registered P3M-Net encoders. Importing this package registers every backbone."""

from src.models.components.backbones.base import (
    Backbone,
    DecoderSpec,
    EncoderFeatures,
    EncoderState,
)
from src.models.components.backbones.registry import (
    backbone_factory,
    create_backbone,
    list_backbones,
    register_backbone,
)
from src.models.components.backbones.resnet34 import ResNet34Backbone
from src.models.components.backbones.swin import SwinBackbone
from src.models.components.backbones.vitae import ViTAEBackbone

__all__ = [
    "Backbone",
    "DecoderSpec",
    "EncoderFeatures",
    "EncoderState",
    "ResNet34Backbone",
    "SwinBackbone",
    "ViTAEBackbone",
    "backbone_factory",
    "create_backbone",
    "list_backbones",
    "register_backbone",
]
