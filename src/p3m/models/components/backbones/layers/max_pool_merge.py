"""Token merging by max-pooling, the P3M-Net replacement for Swin's patch merging.

LayerNorm -> 2x2 max-pool that returns its indices -> bias-free linear ``C -> C_out``. The
normalised map before pooling is the skip feature of that resolution; the indices let the local
decoder un-pool. Used between the stages of both the Swin-T and the ViTAE-S encoders.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class MaxPoolMerge(nn.Module):
    """Halve the resolution of channels-last tokens with an index-returning max-pool.

    Args:
        dim: Input channels.
        out_dim: Output channels (``2 * dim`` in both variants).
        norm_eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, out_dim: int, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.proj = nn.Linear(dim, out_dim, bias=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Merge ``(N, H, W, C)`` tokens.

        Returns:
            The merged tokens ``(N, H/2, W/2, C_out)``, the skip feature ``(N, C, H, W)`` (normalised,
            contiguous) and the max-pool indices ``(N, C, H/2, W/2)``.
        """
        # A contiguous NCHW skip keeps the decoder's convolutions on the default layout, and the
        # pool then sees exactly the official tensor (same tie-breaking, same indices).
        skip = self.norm(x).permute(0, 3, 1, 2).contiguous()
        pooled, indices = F.max_pool2d(skip, kernel_size=2, stride=2, return_indices=True)
        return self.proj(pooled.permute(0, 2, 3, 1)), skip, indices
