"""ViTAE-S encoder of P3M-Net (IJCV 2023), registered as ``vitae``.

The authors' "ViTAE, no reduction cells, max-pooling" variant: the reduction cells are replaced by
the convolutional stem (two index-returning max-pools) and by max-pool merges, and every stage is a
stack of normal cells. A normal cell adds, to its input, an attention branch (on the LayerNorm-ed
tokens) and a parallel convolution branch (PCM, on the raw tokens), then a residual MLP::

    stage 0: conv 3->32 + ReLU (skip 32 @ 1) -> pool
    stage 1: conv 32->64 + ReLU (skip 64 @ 2) -> pool
    stage 2: conv 64->64, LayerNorm -> 2 cells (Performer, 64)  -> merge (skip 64 @ 4)   -> 128 @ 8
    stage 3: 2 cells (128, 2 heads)                               -> merge (skip 128 @ 8)  -> 256 @ 16
    stage 4: 12 cells (256, 4 heads)                              -> merge (skip 256 @ 16) -> 512 @ 32
    stage 5: 2 cells (512, 8 heads)                               (deepest 512 @ 32, no final norm)

PCM groups are 1/32/64/128 per stage. Of the official configuration, SE layers, class tokens,
layer-scale (gamma) and the reduction cells' token transformers/performers are all off or unused, so
they are not built here; nor is the 1000-class ``head`` that no forward uses (checkpoint loaders
skip and report it). The official Performer draws its random features at construction and saves
them nowhere; ours are a seeded, persistent buffer (see ``layers/performer.py``).
Between stages ``state.x`` is an ``(N, C, H, W)`` map.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from timm.layers import Attention, DropPath, Mlp
from torch import Tensor, nn

from p3m.models.components.backbones.base import DecoderSpec
from p3m.models.components.backbones.layers import (
    ConvPoolStem,
    MaxPoolMerge,
    ParallelConvModule,
    PerformerAttention,
    init_transformer_weights,
    orthogonal_random_features,
)
from p3m.models.components.backbones.registry import register_backbone
from p3m.models.components.backbones.token_stages import TokenStagesBackbone

log = logging.getLogger(__name__)

VITAE_DECODER_SPEC = DecoderSpec(
    global_stages=(
        (512, 256, 256, 256),
        (256, 128, 128, 128),
        (128, 64, 64, 64),
        (64, 64, 64, 64),
        (64, 32, 32, 32),
    ),
    local_stages=(
        (512, 256, 256, 256),
        (256, 128, 128, 128),
        (128, 64, 64, 64),
        (64, 64, 64, 64),
        (64, 32, 32),
    ),
    global_head=True,
)

# LayerNorm epsilon inside the normal cells (the official model passes eps=1e-6 there only; the stem
# and merge norms keep PyTorch's 1e-5).
_CELL_NORM_EPS = 1e-6
# Random features per head of the Performer, as a fraction of the head dimension.
PERFORMER_KERNEL_RATIO = 0.5


class NormalCell(nn.Module):
    """ViTAE normal cell: ``x + attn(norm1(x)) + PCM(x)``, then ``+ mlp(norm2(.))``.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        groups: Groups of the PCM convolutions.
        mlp_ratio: Hidden width of the MLP and of the PCM as a multiple of ``dim``.
        performer_seed: Use Performer attention with random features drawn from this seed; None for
            full softmax attention.
        drop_path: Stochastic-depth rate (applied to each branch independently, as officially).
        drop: Dropout after the attention and MLP projections.
        attn_drop: Dropout on the attention weights (full attention only).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        groups: int,
        mlp_ratio: float = 4.0,
        performer_seed: int | None = None,
        drop_path: float = 0.0,
        drop: float = 0.0,
        attn_drop: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=_CELL_NORM_EPS)
        if performer_seed is None:
            self.attn: nn.Module = Attention(
                dim, num_heads=num_heads, qkv_bias=True, attn_drop=attn_drop, proj_drop=drop
            )
        else:
            self.attn = PerformerAttention(
                dim,
                num_heads=num_heads,
                kernel_ratio=PERFORMER_KERNEL_RATIO,
                seed=performer_seed,
                proj_drop=drop,
            )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=_CELL_NORM_EPS)
        self.mlp = Mlp(dim, hidden, drop=drop)
        self.pcm = ParallelConvModule(dim, hidden, groups)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, H, W, C) -> (N, H, W, C)``."""
        n, height, width, channels = x.shape
        conv = self.pcm(x.permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1)
        attended = self.attn(self.norm1(x).reshape(n, height * width, channels)).view(
            n, height, width, channels
        )
        x = x + self.drop_path(attended)
        x = x + self.drop_path(conv)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ViTAEStage(nn.Module):
    """Normal cells in sequence, optionally followed by a max-pool merge (run by the backbone)."""

    def __init__(self, cells: list[NormalCell], merge: MaxPoolMerge | None) -> None:
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.merge = merge

    def forward(self, x: Tensor) -> Tensor:
        """Run the cells on ``(N, H, W, C)`` tokens."""
        for cell in self.cells:
            x = cell(x)
        return x


def _official_key_rules() -> tuple[tuple[str, str], ...]:
    """(official encoder key without ``encoder.``, ours): official layer ``i``'s reduction cell (RC) is
    the stem for ``i = 0`` and otherwise the merge that ends our stage ``i - 1``."""
    rules = [
        (r"layers\.0\.RC\.proj([123])\.(weight|bias)", r"stem.conv\1.\2"),
        (r"layers\.0\.RC\.norm\.(weight|bias)", r"stem.norm.\1"),
    ]
    for i in (1, 2, 3):
        rules += [
            (rf"layers\.{i}\.RC\.norm\.(weight|bias)", rf"stages.{i - 1}.merge.norm.\1"),
            (rf"layers\.{i}\.RC\.linear\.weight", rf"stages.{i - 1}.merge.proj.weight"),
        ]
    cell = r"layers\.(\d+)\.NC\.(\d+)\."
    ours = r"stages.\1.cells.\2."
    rules += [
        (cell + r"((?:norm[12]|attn\.(?:qkv|kqv|proj)|mlp\.fc[12])\.(?:weight|bias))", ours + r"\3"),
        (cell + r"attn\.norm1\.(weight|bias)", ours + r"attn.unused_norm.\3"),
    ]
    for official, mine in (("0", "conv1"), ("1", "bn1"), ("3", "conv2"), ("4", "bn2"), ("6", "conv3")):
        rules.append((cell + rf"PCM\.{official}\.(.+)", ours + rf"pcm.{mine}.\3"))
    return tuple(rules)


class ViTAEBackbone(TokenStagesBackbone):
    """P3M-Net's ViTAE-S: convolutional stem, four stages of normal cells, max-pool merges.

    Args:
        token_dims: Token channels per stage.
        depths: Normal cells per stage.
        num_heads: Attention heads per stage.
        pcm_groups: PCM convolution groups per stage.
        performer_stages: Number of leading stages whose cells use Performer attention.
        mlp_ratio: MLP / PCM hidden width as a multiple of the token width.
        drop_path_rate: Stochastic depth of the last cell (linear from 0 over all cells).
        drop_rate: Dropout after attention/MLP projections.
        attn_drop_rate: Dropout on attention weights.
    """

    skip_channels = (32, 64, 64, 128, 256)
    deepest_channels = 512
    decoder_spec = VITAE_DECODER_SPEC

    # How the authors' checkpoints name this encoder (read by p3m.models.checkpoints).
    official_arch: ClassVar[str] = "vitae"
    official_signatures: ClassVar[tuple[str, ...]] = (
        "encoder.layers.0.RC.proj1.weight",
        "encoder.layers.0.NC.0.attn.kqv.weight",
    )
    official_decoder_prefix: ClassVar[str] = "decoder."
    # The ImageNet classifier (513,000 parameters) that no forward uses.
    official_unused: ClassVar[tuple[str, ...]] = (r"(?:encoder\.)?head\..+",)
    _OFFICIAL_KEYS: ClassVar[tuple[tuple[str, str], ...]] = _official_key_rules()
    # Containers of the authors' ImageNet files, in order of preference (the official loader reads
    # `state_dict_ema`).
    pretrained_containers: ClassVar[tuple[str, ...]] = ("state_dict_ema", "state_dict", "model")
    # Performer cell j draws its random features from seed `performer_seed + j`: fixed, so every
    # build and every load of an official file (which lacks them) gets the same ones.
    performer_seed: ClassVar[int] = 0
    # Heads per stage of the official ViTAE-S (what official files are).
    official_num_heads: ClassVar[tuple[int, ...]] = (1, 2, 4, 8)

    def __init__(
        self,
        token_dims: tuple[int, ...] = (64, 128, 256, 512),
        depths: tuple[int, ...] = (2, 2, 12, 2),
        num_heads: tuple[int, ...] = (1, 2, 4, 8),
        pcm_groups: tuple[int, ...] = (1, 32, 64, 128),
        performer_stages: int = 1,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if not len(token_dims) == len(depths) == len(num_heads) == len(pcm_groups) == 4:
            raise ValueError(
                f"ViTAE needs 4 stages: got token_dims={token_dims}, depths={depths}, "
                f"num_heads={num_heads}, pcm_groups={pcm_groups}"
            )
        self.stem = ConvPoolStem(
            3, (token_dims[0] // 2, token_dims[0], token_dims[0]), relu_after_embed=False
        )
        # Linear stochastic depth over all cells (the official slicing is off by a stage for rates
        # > 0; the authors' configuration uses 0, where both agree).
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.stages = nn.ModuleList()
        for i, (dim, depth, heads, groups) in enumerate(
            zip(token_dims, depths, num_heads, pcm_groups, strict=True)
        ):
            start = sum(depths[:i])
            cells = [
                NormalCell(
                    dim,
                    heads,
                    groups,
                    mlp_ratio,
                    performer_seed=self.performer_seed + j if i < performer_stages else None,
                    drop_path=rates[start + j],
                    drop=drop_rate,
                    attn_drop=attn_drop_rate,
                )
                for j in range(depth)
            ]
            merge = MaxPoolMerge(dim, token_dims[i + 1]) if i + 1 < len(token_dims) else None
            self.stages.append(ViTAEStage(cells, merge))
        self.apply(init_transformer_weights)

    def performers(self) -> dict[str, PerformerAttention]:
        """Performer attention modules by their name in this encoder."""
        return {name: m for name, m in self.named_modules() if isinstance(m, PerformerAttention)}

    @classmethod
    def complete_official_state(cls, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Add the Performer random features that official files never hold, drawn from our seeds.

        A cell is a Performer cell if ``state`` holds its ``attn.kqv.weight``; the features get the
        seed the cell is built with, so the result equals a freshly built encoder's buffers.

        Args:
            state: Encoder weights under our key names (relative to the backbone), e.g. converted
                from an official file.

        Returns:
            A copy of ``state`` with a ``random_features`` entry for every Performer it lacks.
        """
        state = dict(state)
        for key in list(state):
            match = re.fullmatch(r"(stages\.(\d+)\.cells\.(\d+)\.attn)\.kqv\.weight", key)
            if match is None or f"{match[1]}.random_features" in state:
                continue
            dim = state[key].shape[1]
            heads = cls.official_num_heads[int(match[2])]
            seed = cls.performer_seed + int(match[3])
            state[f"{match[1]}.random_features"] = orthogonal_random_features(
                heads, int(dim // heads * PERFORMER_KERNEL_RATIO), dim // heads, seed
            )
            log.info(
                "official weights hold no Performer projection for %s: drawn from seed %d", match[1], seed
            )
        return state


@register_backbone
def vitae(pretrained: str | Path | bool | None = None, drop_path_rate: float = 0.0) -> ViTAEBackbone:
    """P3M-Net's ViTAE-S encoder.

    Args:
        pretrained: Path of the authors' ViTAE-S ImageNet file; None/False for random initialisation.
            Nothing is ever downloaded.
        drop_path_rate: Stochastic depth of the last cell (the authors use 0).
    """
    if pretrained is True:
        raise ValueError(
            "vitae(pretrained=True) needs a file: pass the path of the authors' ViTAE-S ImageNet weights"
        )
    model = ViTAEBackbone(drop_path_rate=drop_path_rate)
    if pretrained:
        model.load_pretrained(pretrained)
    return model
