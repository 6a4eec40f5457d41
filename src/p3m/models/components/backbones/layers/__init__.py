"""P3M-specific building blocks of the Swin-T and ViTAE-S encoders (stem, merging, PCM, Performer)."""

from p3m.models.components.backbones.layers.conv_pool_stem import ConvPoolStem
from p3m.models.components.backbones.layers.max_pool_merge import MaxPoolMerge
from p3m.models.components.backbones.layers.pcm import ParallelConvModule
from p3m.models.components.backbones.layers.performer import PerformerAttention, orthogonal_random_features
from p3m.models.components.backbones.layers.shifted_windows import window_attention_mask
from p3m.models.components.backbones.layers.weight_init import init_transformer_weights

__all__ = [
    "ConvPoolStem",
    "MaxPoolMerge",
    "ParallelConvModule",
    "PerformerAttention",
    "init_transformer_weights",
    "orthogonal_random_features",
    "window_attention_mask",
]
