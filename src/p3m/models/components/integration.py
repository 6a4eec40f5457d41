"""P3M-Net's three integration modules, which let the two decoders and the encoder talk.

* :class:`TFI` (tripartite-feature integration) merges, at one stride, the global decoder's
  semantic feature, the local decoder's feature and the encoder's skip feature.
* :class:`SBFI` (shallow bipartite-feature integration) adds the finest encoder feature (stride 1),
  max-pooled to the local decoder's stride, to the local decoder as a residual.
* :class:`DBFI` (deep bipartite-feature integration) adds the deepest encoder feature, upsampled to
  the global decoder's stride, to the global decoder as a residual and emits a 3-class side output.

All their convolutions are bias-free (a BatchNorm follows, or the side output is a plain
projection), as in the official models; the official layer names map onto ours in
:mod:`p3m.models.checkpoints`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)


class TFI(nn.Module):
    """Tripartite-feature integration: fuse global guidance, local decoder and encoder features.

    The three inputs share one 1x1 reduction to ``channels // 2`` (so they must have equal widths),
    are concatenated and fused by a 3x3 conv + BatchNorm + ReLU back to ``channels``.

    Args:
        channels: Width of all three inputs and of the output.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.reduce = _conv1x1(channels, half)
        self.fuse = _conv3x3(3 * half, channels)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, guidance: Tensor, local: Tensor, skip: Tensor) -> Tensor:
        """Fuse three ``(N, channels, h, w)`` maps into one."""
        x = torch.cat([self.reduce(guidance), self.reduce(local), self.reduce(skip)], dim=1)
        # In place, as the official nn.ReLU(inplace=True): BatchNorm's backward does not need its
        # output, and a new activation-sized tensor per call costs a full-size allocation.
        return F.relu(self.norm(self.fuse(x)), inplace=True)


class SBFI(nn.Module):
    """Shallow bipartite-feature integration: refine the local decoder with the stride-1 feature.

    The stride-1 encoder feature is max-pooled (2x2 window, stride ``stride``) to the decoder's
    resolution; both are reduced to ``channels // 2`` by 1x1 convs, concatenated, fused by a 3x3
    conv + BatchNorm + ReLU and added to the decoder feature.

    Args:
        channels: Width of the local decoder feature (input and output).
        shallow_channels: Width of the stride-1 encoder feature.
        stride: Stride of the decoder feature relative to the stride-1 feature.
    """

    def __init__(self, channels: int, shallow_channels: int, stride: int) -> None:
        super().__init__()
        half = channels // 2
        self.pool = nn.MaxPool2d(kernel_size=2, stride=stride)
        self.reduce_decoder = _conv1x1(channels, half)
        self.reduce_skip = _conv1x1(shallow_channels, half)
        self.fuse = _conv3x3(2 * half, channels)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, local: Tensor, shallow: Tensor) -> Tensor:
        """Refine ``local`` (N, channels, h, w) with ``shallow`` (N, shallow_channels, H, W)."""
        x = torch.cat([self.reduce_decoder(local), self.reduce_skip(self.pool(shallow))], dim=1)
        return F.relu(self.norm(self.fuse(x)), inplace=True) + local


class DBFI(nn.Module):
    """Deep bipartite-feature integration: refine the global decoder with the deepest feature.

    The deepest (stride-32) encoder feature is reduced by a 1x1 conv and bilinearly upsampled by
    ``scale`` to the decoder's resolution; with the reduced decoder feature it is fused by a 3x3
    conv + BatchNorm + ReLU and added to the decoder feature. A 3x3 conv of the result gives
    3-class side logits, bilinearly upsampled to the input resolution.

    Args:
        channels: Width of the global decoder feature (input and output).
        deep_channels: Width of the deepest encoder feature.
        scale: Upsampling factor from stride 32 to the decoder feature's stride.
    """

    def __init__(self, channels: int, deep_channels: int, scale: int) -> None:
        super().__init__()
        half = channels // 2
        self.scale = scale
        # The decoder feature is at stride 32 / scale; the side output goes back to stride 1.
        self.side_scale = 32 // scale
        self.reduce_decoder = _conv1x1(channels, half)
        self.reduce_deep = _conv1x1(deep_channels, half)
        self.fuse = _conv3x3(2 * half, channels)
        self.norm = nn.BatchNorm2d(channels)
        self.side = _conv3x3(channels, 3)

    def forward(self, decoder: Tensor, deepest: Tensor, side: bool = True) -> tuple[Tensor, Tensor | None]:
        """Return the refined decoder feature and the full-resolution side logits (N, 3, H, W).

        ``side=False`` skips the side head (None instead): the refined feature does not depend on it.
        """
        deep = bilinear_upsample(self.reduce_deep(deepest), self.scale)
        x = torch.cat([self.reduce_decoder(decoder), deep], dim=1)
        out = F.relu(self.norm(self.fuse(x)), inplace=True) + decoder
        return out, bilinear_upsample(self.side(out), self.side_scale) if side else None


def bilinear_upsample(x: Tensor, scale: int) -> Tensor:
    """Upsample ``x`` bilinearly by an integer factor, exactly as the official models do."""
    # The official layers are nn.Upsample(scale_factor=s, mode="bilinear"): align_corners=False
    # and the source coordinates computed from the scale factor, which we keep for exact parity.
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
