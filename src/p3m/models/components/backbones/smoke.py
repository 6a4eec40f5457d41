"""``backbone=smoke``: a few thousand weights that honour the whole encoder contract, for smoke runs.

timm registers ``test_*`` models for the same reason: the machinery around a network (resuming,
pre-emption, DDP, sweeps, loggers) is the same for every backbone, and checking it with ResNet-34
means writing ~0.5 GB checkpoints and paying for 39 M weights' steps on every test run. A smoke
P3M-Net trains a step in milliseconds and learns nothing useful: never report its numbers.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from p3m.models.components.backbones.base import Backbone, DecoderSpec, EncoderState
from p3m.models.components.backbones.registry import register_backbone


class SmokeBackbone(Backbone):
    """One 3x3 conv + ReLU per stage, each followed by an index-returning 2x2 max-pool."""

    num_stages = 5

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.skip_channels = (width,) * self.num_stages
        self.deepest_channels = width
        narrow = (width, width)
        self.decoder_spec = DecoderSpec(
            global_stages=(narrow, narrow, narrow, narrow, (width, 3)),
            local_stages=(narrow,) * self.num_stages,
            global_head=False,
        )
        self.convs = nn.ModuleList(
            nn.Conv2d(3 if i == 0 else width, width, 3, padding=1) for i in range(self.num_stages)
        )

    def run_stage(self, index: int, state: EncoderState) -> EncoderState:
        skip = F.relu(self.convs[index](state.x))
        x, indices = F.max_pool2d(skip, 2, return_indices=True)
        return EncoderState(x=x, skips=[*state.skips, skip], indices=[*state.indices, indices])


@register_backbone
def smoke(pretrained: str | None = None, width: int = 4) -> Backbone:
    """The smoke backbone, ``width`` channels throughout; it has no pretrained weights."""
    if pretrained:
        raise ValueError("backbone=smoke has no pretrained weights: set backbone.pretrained=null")
    return SmokeBackbone(width)
