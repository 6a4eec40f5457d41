"""Performer attention (FAVOR+ positive random features), used by ViTAE-S in its first stage.

Softmax attention ``softmax(q k^T / sqrt(d)) v`` costs O(L^2); at stride 4 of a 512x512 image
(L = 16384 tokens) that is prohibitive, so the first stage approximates the softmax kernel with
``m = kernel_ratio * head_dim`` positive random features ``phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)``
and computes ``phi(q) (phi(k)^T v) / (phi(q) phi(k)^T 1)`` in O(L m d). As in the official cell,
the features use the raw ``q`` and ``k`` (no ``1/sqrt(d)`` scaling) and are computed in float32.

The official code draws ``W`` (orthogonal rows scaled by ``sqrt(m)``) at construction and keeps it
as a plain tensor: it is in no checkpoint, so two runs of one checkpoint differ. Here ``W`` is a
persistent buffer drawn from a fixed seed: saved with our checkpoints and identical across runs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def orthogonal_random_features(num_heads: int, num_features: int, head_dim: int, seed: int) -> Tensor:
    """Draw ``(num_heads, num_features, head_dim)`` projections with orthonormal rows, times ``sqrt(m)``.

    The draw uses its own CPU generator (and CPU memory, even under a ``torch.device`` context), so it
    never depends on, or advances, the global RNG.
    """
    generator = torch.Generator().manual_seed(seed)
    weights = torch.empty(num_heads, num_features, head_dim, device="cpu")
    for head in range(num_heads):
        nn.init.orthogonal_(weights[head], generator=generator)
    return weights * math.sqrt(num_features)


class PerformerAttention(nn.Module):
    """Multi-head Performer self-attention on ``(N, L, C)`` tokens.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        kernel_ratio: Random features per head as a fraction of the head dimension.
        seed: Seed of the random features (see :func:`orthogonal_random_features`).
        proj_drop: Dropout after the output projection.
        eps: Added to the normaliser before dividing.
    """

    random_features: Tensor  # buffer (num_heads, num_features, head_dim)

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        kernel_ratio: float = 0.5,
        seed: int = 0,
        proj_drop: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.num_features = int(self.head_dim * kernel_ratio)
        self.seed = seed
        self.eps = eps
        # Output order of this projection is key, query, value (the official layout).
        self.kqv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.register_buffer(
            "random_features", orthogonal_random_features(num_heads, self.num_features, self.head_dim, seed)
        )
        # The official cell builds a LayerNorm here that its forward never calls. Its weights are in
        # every official checkpoint and in the published parameter count, so it is kept, frozen.
        self.unused_norm = nn.LayerNorm(dim, eps=1e-6)
        self.unused_norm.requires_grad_(False)

    def _feature_map(self, x: Tensor) -> Tensor:
        """``(N, heads, L, d) -> (N, heads, L, m)`` positive random features of ``x`` (float32)."""
        projected = x @ self.random_features.float().transpose(-1, -2)
        half_sq_norm = x.square().sum(dim=-1, keepdim=True) / 2
        return torch.exp(projected - half_sq_norm) / math.sqrt(self.num_features)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, L, C) -> (N, L, C)``."""
        n, length, channels = x.shape
        kqv = self.kqv(x).view(n, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        # The exponentials overflow in half precision; the official cell also works in float32.
        k, q, v = kqv.float().unbind(0)
        k_features, q_features = self._feature_map(k), self._feature_map(q)
        kv = v.transpose(-1, -2) @ k_features  # (N, heads, d, m)
        numerator = q_features @ kv.transpose(-1, -2)  # (N, heads, L, d)
        normaliser = q_features @ k_features.sum(dim=2).unsqueeze(-1)  # (N, heads, L, 1)
        y = (numerator / (normaliser + self.eps)).transpose(1, 2).reshape(n, length, channels)
        return self.proj_drop(self.proj(y.to(x.dtype)))
