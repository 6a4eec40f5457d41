"""The convolutional stem shared by P3M-Net's Swin-T and ViTAE-S encoders.

Both IJCV variants replace the usual 4x4 patch embedding with three stride-1 3x3 convolutions and
two index-returning 2x2 max-pools, so the local decoder can un-pool back to full resolution:

    conv1 + ReLU (skip, stride 1) -> max-pool -> conv2 + ReLU (skip, stride 2) -> max-pool
    -> conv3 (+ ReLU for Swin-T, none for ViTAE-S) -> LayerNorm over channels (stride 4 tokens)

The stem is split so that each downsampling is its own encoder stage: :meth:`ConvPoolStem.down`
runs one conv + pool, :meth:`ConvPoolStem.embed` turns the stride-4 map into normalised tokens.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from p3m.models.components.backbones.base import EncoderState


class ConvPoolStem(nn.Module):
    """Three 3x3 convolutions with two index-returning max-pools and a final LayerNorm.

    Args:
        in_chans: Input channels (3 for RGB).
        widths: Output channels of conv1, conv2 and conv3.
        relu_after_embed: Apply a ReLU after conv3 (Swin-T does, ViTAE-S does not).
        norm_eps: Epsilon of the LayerNorm on the stride-4 tokens.
    """

    def __init__(
        self,
        in_chans: int = 3,
        widths: tuple[int, int, int] = (48, 96, 96),
        relu_after_embed: bool = True,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.conv1 = nn.Conv2d(in_chans, c1, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, kernel_size=3, padding=1)
        self.norm = nn.LayerNorm(c3, eps=norm_eps)
        self.relu_after_embed = relu_after_embed

    def down(self, level: int, state: EncoderState) -> EncoderState:
        """Conv ``level + 1`` + ReLU (kept as a skip), then a 2x2 max-pool whose indices are kept."""
        conv = self.conv1 if level == 0 else self.conv2
        feature = F.relu(conv(state.x), inplace=True)
        pooled, indices = F.max_pool2d(feature, kernel_size=2, stride=2, return_indices=True)
        state.skips.append(feature)
        state.indices.append(indices)
        state.x = pooled
        return state

    def embed(self, x: Tensor) -> Tensor:
        """Stride-4 ``(N, C, H, W)`` map -> normalised tokens ``(N, H, W, C)`` (channels last)."""
        x = self.conv3(x)
        if self.relu_after_embed:
            x = F.relu(x, inplace=True)
        return self.norm(x.permute(0, 2, 3, 1))
