"""ViTAE's parallel convolution module (PCM): the convolutional branch of a normal cell.

Three grouped 3x3 convolutions ``dim -> hidden -> dim -> dim`` with BatchNorm + SiLU after the first
two and SiLU after the last. It runs on the cell's input tokens (not normalised), in parallel with
the attention branch, and its output is added to the residual stream.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ParallelConvModule(nn.Module):
    """Grouped-convolution branch of a ViTAE normal cell.

    Args:
        dim: Token channels.
        hidden_dim: Channels of the first convolution's output (``mlp_ratio * dim``).
        groups: Groups of all three convolutions.
    """

    def __init__(self, dim: int, hidden_dim: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, hidden_dim, kernel_size=3, padding=1, groups=groups)
        self.bn1 = nn.BatchNorm2d(hidden_dim)
        self.conv2 = nn.Conv2d(hidden_dim, dim, kernel_size=3, padding=1, groups=groups)
        self.bn2 = nn.BatchNorm2d(dim)
        self.conv3 = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C, H, W) -> (N, C, H, W)``."""
        x = F.silu(self.bn1(self.conv1(x)))
        x = F.silu(self.bn2(self.conv2(x)))
        return F.silu(self.conv3(x))
