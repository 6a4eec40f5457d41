"""The contract every P3M-Net encoder honours.

A backbone is run as a sequence of *stages*. Each stage reads ``state.x`` and may append a skip
feature and/or a max-pool index tensor to the running :class:`EncoderState`. After the last stage,
``state.x`` is the deepest feature (stride 32), ``state.skips`` holds five skip features at strides
1, 2, 4, 8, 16 (finest first) and ``state.indices`` five max-pool index tensors, finest first:
``indices[i]`` un-pools a stride ``2**(i+1)`` map back to stride ``2**i`` with
``F.max_unpool2d(x, indices[i], kernel_size=2, stride=2)``.

Running the stages in two halves (``forward_stages(..., end=k)`` then ``forward_stages(state,
start=k)``) lets a caller edit the features in between; P3M-FCP pastes public-face features there.

A backbone also declares its channels (``skip_channels``, ``deepest_channels``) and carries the
:class:`DecoderSpec` of its P3M-Net variant, so both decoders are built from it in a loop.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import NamedTuple

from torch import Tensor, nn

SKIP_STRIDES: tuple[int, ...] = (1, 2, 4, 8, 16)
DEEPEST_STRIDE = 32


@dataclass(frozen=True)
class DecoderSpec:
    """Channel plan of P3M-Net's segmentation (global) and matting (local) decoders.

    Both decoders have five stages, listed deepest first (stride 32 -> 1). A stage is the sequence
    of channel widths its 3x3 convolutions go through: ``(512, 512, 512, 256)`` is three convs
    512->512->512->256, each followed by BatchNorm + ReLU. The official variants differ in where
    they reduce channels, so the plan belongs to the backbone variant.

    Attributes:
        global_stages: Global decoder stages. Every stage ends with a 2x bilinear upsample. The last
            conv of the last stage has no BatchNorm/ReLU.
        local_stages: Local decoder stages; each is followed by a max-unpool, and the last one by a
            3x3 conv to one channel and a sigmoid.
        global_head: If True the global decoder ends with a separate 3x3 conv to 3 classes (Swin-T,
            ViTAE-S); if False the last conv of the last global stage already outputs the 3 class
            logits (ResNet-34).
    """

    global_stages: tuple[tuple[int, ...], ...]
    local_stages: tuple[tuple[int, ...], ...]
    global_head: bool


@dataclass
class EncoderState:
    """Running state between encoder stages."""

    x: Tensor
    skips: list[Tensor] = field(default_factory=list)
    indices: list[Tensor] = field(default_factory=list)


class EncoderFeatures(NamedTuple):
    """What an encoder hands to the decoders."""

    skips: tuple[Tensor, ...]
    """Five skip features at strides 1, 2, 4, 8, 16 (finest first)."""
    deepest: Tensor
    """The stride-32 feature."""
    indices: tuple[Tensor, ...]
    """Five max-pool index tensors, finest first."""


class Backbone(nn.Module, abc.ABC):
    """Base class of registered P3M-Net encoders.

    Subclasses set the class attributes below and implement :meth:`run_stage`.
    """

    skip_channels: tuple[int, ...]
    deepest_channels: int
    decoder_spec: DecoderSpec
    num_stages: int

    @property
    def feature_info(self) -> list[dict[str, int]]:
        """timm-style description: channels and reduction of each skip and of the deepest feature."""
        info = [{"num_chs": c, "reduction": s} for c, s in zip(self.skip_channels, SKIP_STRIDES, strict=True)]
        return [*info, {"num_chs": self.deepest_channels, "reduction": DEEPEST_STRIDE}]

    @abc.abstractmethod
    def run_stage(self, index: int, state: EncoderState) -> EncoderState:
        """Run stage ``index`` on ``state`` and return the updated state."""

    def forward_stages(
        self, state: EncoderState | Tensor, start: int = 0, end: int | None = None
    ) -> EncoderState:
        """Run stages ``start`` .. ``end - 1``; a tensor input starts a fresh state."""
        if isinstance(state, Tensor):
            state = EncoderState(x=state)
        end = self.num_stages if end is None else end
        if not 0 <= start <= end <= self.num_stages:
            raise ValueError(f"stage range [{start}, {end}) is outside 0..{self.num_stages}")
        for index in range(start, end):
            state = self.run_stage(index, state)
        return state

    def forward(self, x: Tensor) -> EncoderFeatures:
        """Encode an ImageNet-normalised ``(N, 3, H, W)`` image; H and W multiples of 32."""
        state = self.forward_stages(x)
        return EncoderFeatures(tuple(state.skips), state.x, tuple(state.indices))
