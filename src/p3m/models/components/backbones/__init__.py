"""Registered P3M-Net encoders. Importing this package registers every backbone."""

from p3m.models.components.backbones.base import (
    Backbone,
    DecoderSpec,
    EncoderFeatures,
    EncoderState,
)
from p3m.models.components.backbones.registry import (
    backbone_factory,
    create_backbone,
    list_backbones,
    register_backbone,
)
from p3m.models.components.backbones.resnet34 import ResNet34Backbone
from p3m.models.components.backbones.smoke import SmokeBackbone
from p3m.models.components.backbones.swin import SwinBackbone
from p3m.models.components.backbones.vitae import ViTAEBackbone

__all__ = [
    "Backbone",
    "DecoderSpec",
    "EncoderFeatures",
    "EncoderState",
    "ResNet34Backbone",
    "SmokeBackbone",
    "SwinBackbone",
    "ViTAEBackbone",
    "backbone_factory",
    "create_backbone",
    "list_backbones",
    "register_backbone",
]
