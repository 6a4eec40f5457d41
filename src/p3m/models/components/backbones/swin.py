"""Swin-T encoder of P3M-Net (IJCV 2023), registered as ``swin``.

The authors' variant of Swin-T (depths 2/2/6/2, dims 96..768, heads 3/6/12/24, window 7) swaps the
4x4 patch embedding for a convolutional stem with two index-returning max-pools and every patch
merging for LayerNorm -> index-returning 2x2 max-pool -> linear ``C -> 2C``, so the local decoder can
un-pool all five resolutions::

    stage 0: conv 3->48 + ReLU (skip 48 @ 1) -> pool
    stage 1: conv 48->96 + ReLU (skip 96 @ 2) -> pool
    stage 2: conv 96->96 + ReLU, LayerNorm -> 2 blocks -> merge (skip 96 @ 4)  -> 192 @ 8
    stage 3: 2 blocks  -> merge (skip 192 @ 8)  -> 384 @ 16
    stage 4: 6 blocks  -> merge (skip 384 @ 16) -> 768 @ 32
    stage 5: 2 blocks  -> LayerNorm (deepest 768 @ 32)

Window attention runs through ``scaled_dot_product_attention`` with the relative position bias and
the shift/padding mask as ``attn_mask``. Feature maps are padded to a multiple of the window at any
size (the official code only runs when every stage needs padding, e.g. 512 px, and crashes at 224).
Between stages ``state.x`` is an ``(N, C, H, W)`` map.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_
from timm.models.swin_transformer import get_relative_position_index, window_partition, window_reverse
from torch import Tensor, nn

from p3m.models.components.backbones.base import DecoderSpec
from p3m.models.components.backbones.layers import (
    ConvPoolStem,
    MaxPoolMerge,
    init_transformer_weights,
    window_attention_mask,
)
from p3m.models.components.backbones.registry import register_backbone
from p3m.models.components.backbones.token_stages import TokenStagesBackbone

SWIN_DECODER_SPEC = DecoderSpec(
    global_stages=(
        (768, 384, 384, 384),
        (384, 192, 192, 192),
        (192, 96, 96, 96),
        (96, 96, 96, 96),
        (96, 48, 48, 48),
    ),
    local_stages=(
        (768, 384, 384, 384),
        (384, 192, 192, 192),
        (192, 96, 96, 96),
        (96, 96, 96, 96),
        (96, 48, 48),
    ),
    global_head=True,
)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside square windows, with a learned relative position bias.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Window side.
        attn_drop: Dropout on the attention weights (training only).
        proj_drop: Dropout after the output projection.
    """

    relative_position_index: Tensor  # buffer (window_area**2,), not saved

    def __init__(
        self, dim: int, num_heads: int, window_size: int, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_area = window_size * window_size
        self.attn_drop = attn_drop
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # Derived from the window size alone: recomputed, never saved.
        self.register_buffer(
            "relative_position_index", get_relative_position_index(window_size, window_size), persistent=False
        )
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_position_bias(self) -> Tensor:
        """``(heads, N, N)`` bias added to the attention logits."""
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(self.window_area, self.window_area, -1).permute(2, 0, 1)

    def forward(self, windows: Tensor, mask: Tensor | None) -> Tensor:
        """Attend within ``(N * num_windows, window_area, C)`` windows.

        Args:
            windows: Tokens, windows of one image consecutive (as ``window_partition`` orders them).
            mask: Additive ``(num_windows, window_area, window_area)`` mask, or None.
        """
        batch_windows, area, channels = windows.shape
        head_dim = channels // self.num_heads
        qkv = self.qkv(windows).view(batch_windows, area, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn_mask = self.relative_position_bias().unsqueeze(0)
        if mask is not None:
            num_windows = mask.shape[0]
            attn_mask = attn_mask + mask.unsqueeze(1)
            if batch_windows != num_windows:
                # A 4-D mask runs SDPA's fused CPU kernel; a 5-D broadcast would fall back to maths.
                attn_mask = attn_mask.expand(batch_windows // num_windows, -1, -1, -1, -1).flatten(0, 1)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask.to(q.dtype), dropout_p=self.attn_drop if self.training else 0.0
        )
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(batch_windows, area, channels)))


class SwinBlock(nn.Module):
    """Pre-norm Swin block: (shifted) window attention then an MLP, both residual.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Window side.
        shift: Cyclic shift of the windows (0 or ``window_size // 2``).
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
        drop_path: Stochastic-depth rate.
        drop: Dropout after the attention and MLP projections.
        attn_drop: Dropout on the attention weights.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        shift: int = 0,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        drop: float = 0.0,
        attn_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``(N, H, W, C) -> (N, H, W, C)``; ``mask`` from :func:`window_attention_mask` for this shift."""
        _, height, width, channels = x.shape
        size = self.window_size
        y = self.norm1(x)
        pad_h, pad_w = -height % size, -width % size
        if pad_h or pad_w:
            # Zero padding after the norm, as the official block does; the mask hides it.
            y = F.pad(y, (0, 0, 0, pad_w, 0, pad_h))
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(y.contiguous(), (size, size)).view(-1, size * size, channels)
        windows = self.attn(windows, mask)
        y = window_reverse(
            windows.view(-1, size, size, channels), (size, size), height + pad_h, width + pad_w
        )
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y[:, :height, :width])
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SwinStage(nn.Module):
    """Swin blocks alternating unshifted / shifted windows, optionally followed by a max-pool merge."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        drop_path: list[float],
        merge: bool,
        drop: float = 0.0,
        attn_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                num_heads,
                window_size,
                shift=0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
                drop_path=drop_path[i],
                drop=drop,
                attn_drop=attn_drop,
            )
            for i in range(depth)
        )
        self.merge = MaxPoolMerge(dim, 2 * dim) if merge else None

    def forward(self, x: Tensor) -> Tensor:
        """Run the blocks on ``(N, H, W, C)`` tokens (the merge is run by the caller)."""
        height, width = x.shape[1:3]
        # One mask per shift, shared by the blocks of the stage.
        blocks = cast(list[SwinBlock], self.blocks)
        masks = {
            block.shift: window_attention_mask(height, width, self.window_size, block.shift, x.device)
            for block in blocks
        }
        for block in blocks:
            x = block(x, masks[block.shift])
        return x


class SwinBackbone(TokenStagesBackbone):
    """P3M-Net's Swin-T: convolutional stem, Swin stages, max-pool merging (see the module docstring).

    Args:
        embed_dim: Channels of the first Swin stage (doubled at every merge).
        depths: Blocks per Swin stage.
        num_heads: Attention heads per Swin stage.
        window_size: Window side.
        mlp_ratio: MLP hidden width as a multiple of the token width.
        drop_path_rate: Stochastic depth of the last block (linear from 0 over all blocks).
        drop_rate: Dropout after attention/MLP projections.
        attn_drop_rate: Dropout on attention weights.
    """

    skip_channels = (48, 96, 96, 192, 384)
    deepest_channels = 768
    decoder_spec = SWIN_DECODER_SPEC

    # How the authors' checkpoints name this encoder (read by p3m.models.checkpoints).
    official_arch: ClassVar[str] = "swin"
    official_signatures: ClassVar[tuple[str, ...]] = (
        "encoder.patch_embed.proj1.weight",
        "encoder.layers.0.blocks.0.attn.qkv.weight",
    )
    official_decoder_prefix: ClassVar[str] = "decoder."
    # Buffers the official model saves that we derive from the window and input size instead, and
    # the ImageNet classifier an ImageNet file may carry.
    official_unused: ClassVar[tuple[str, ...]] = (
        r"(?:encoder\.)?layers\.\d+\.blocks\.\d+\.(?:attn_mask|attn\.relative_position_index)",
        r"(?:encoder\.)?head\..+",
    )
    # (official encoder key without `encoder.`, ours)
    _OFFICIAL_KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        (r"patch_embed\.proj([123])\.(weight|bias)", r"stem.conv\1.\2"),
        (r"patch_embed\.norm\.(weight|bias)", r"stem.norm.\1"),
        (
            r"layers\.(\d+)\.blocks\.(\d+)\.((?:norm[12]|attn\.(?:qkv|proj)|mlp\.fc[12])\.(?:weight|bias))",
            r"stages.\1.blocks.\2.\3",
        ),
        (
            r"layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table",
            r"stages.\1.blocks.\2.attn.relative_position_bias_table",
        ),
        (r"layers\.(\d+)\.downsample\.norm\.(weight|bias)", r"stages.\1.merge.norm.\2"),
        (r"layers\.(\d+)\.downsample\.linear\.weight", r"stages.\1.merge.proj.weight"),
        (r"norm\.(weight|bias)", r"norm.\1"),
    )
    # Containers of the authors' ImageNet files, in order of preference.
    pretrained_containers: ClassVar[tuple[str, ...]] = ("model", "state_dict")

    def __init__(
        self,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.2,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"Swin needs 4 stages: got depths={depths}, num_heads={num_heads}")
        self.stem = ConvPoolStem(3, (embed_dim // 2, embed_dim, embed_dim), relu_after_embed=True)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.stages = nn.ModuleList(
            SwinStage(
                embed_dim * 2**i,
                depth,
                heads,
                window_size,
                mlp_ratio,
                rates[start : start + depth],
                merge=i < len(depths) - 1,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
            )
            for i, (depth, heads, start) in enumerate(zip(depths, num_heads, starts, strict=True))
        )
        self.norm = nn.LayerNorm(embed_dim * 2 ** (len(depths) - 1))
        self.apply(init_transformer_weights)

    def finish(self, tokens: Tensor) -> Tensor:
        """The final LayerNorm of the last stage's tokens."""
        return self.norm(tokens)


@register_backbone
def swin(pretrained: str | Path | bool | None = None, drop_path_rate: float = 0.2) -> SwinBackbone:
    """P3M-Net's Swin-T encoder.

    Args:
        pretrained: Path of the authors' Swin-T ImageNet file; None/False for random initialisation.
            Nothing is ever downloaded.
        drop_path_rate: Stochastic depth of the last block (the authors train with 0.2).
    """
    if pretrained is True:
        raise ValueError(
            "swin(pretrained=True) needs a file: pass the path of the authors' Swin-T ImageNet weights"
        )
    model = SwinBackbone(drop_path_rate=drop_path_rate)
    if pretrained:
        model.load_pretrained(pretrained)
    return model
