"""The initialisation the official Swin-T and ViTAE-S encoders apply to every submodule."""

from __future__ import annotations

from timm.layers import trunc_normal_
from torch import nn


def init_transformer_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) linears with zero bias, unit LayerNorms; convolutions keep PyTorch's.

    Use as ``model.apply(init_transformer_weights)``.
    """
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm) and module.weight is not None:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
