"""P3M-Net's global (segmentation) and local (matting) decoders, built in a loop from a DecoderSpec.

Both decoders have five stages, deepest first; stage ``i`` reads a feature at stride ``32 / 2**i``.
Every official variant (ResNet-34, Swin-T, ViTAE-S) wires its integration modules to the same
stages; only the channel plan differs, and it comes from the backbone's :class:`DecoderSpec` and
declared channels:

* global stage ``i``: [DBFI with the deepest feature, stages 2-4] -> convs -> 2x bilinear upsample;
  the last conv of stage 4 is plain (no BatchNorm/ReLU), optionally followed by a 3-class head.
* local stage ``i``: [TFI with global stage ``i-1``'s output and the stride-``32/2**i`` skip,
  stages 1-4] -> [SBFI with the stride-1 skip, stages 2-4] -> convs -> 2x max-unpool with the
  encoder's indices; a 3x3 conv to one channel and a sigmoid close it.

Decoder convolutions have biases; the integration modules' do not (as in the official models).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from p3m.models.components.backbones.base import SKIP_STRIDES, DecoderSpec, EncoderFeatures
from p3m.models.components.integration import DBFI, SBFI, TFI, bilinear_upsample

NUM_DECODER_STAGES = 5
# Stages that carry an integration module; identical in every official variant.
DBFI_STAGES = (2, 3, 4)
TFI_STAGES = (1, 2, 3, 4)
SBFI_STAGES = (2, 3, 4)


def stage_stride(stage: int) -> int:
    """Stride of the feature that decoder stage ``stage`` reads (32, 16, 8, 4, 2)."""
    return 32 // 2**stage


class ConvStack(nn.Sequential):
    """3x3 convs (with bias) through ``widths``, each followed by BatchNorm + ReLU.

    Children are numbered conv, bn, relu, conv, ... like the official ``nn.Sequential`` blocks, so
    checkpoint keys map index for index: ``widths=(64, 64, 3)`` holds layers 0-5 (0-3 if
    ``plain_last``).

    Args:
        widths: Channel widths, input first: ``(512, 512, 256)`` is two convs 512->512->256.
        plain_last: If True the last conv has no BatchNorm/ReLU (it produces logits or feeds a head).
    """

    def __init__(self, widths: Sequence[int], plain_last: bool = False) -> None:
        if len(widths) < 2:
            raise ValueError(f"a decoder stage needs at least an input and an output width, got {widths}")
        layers: list[nn.Module] = []
        pairs = list(itertools.pairwise(widths))
        for index, (c_in, c_out) in enumerate(pairs):
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
            if not (plain_last and index == len(pairs) - 1):
                layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class GlobalStage(nn.Module):
    """One global decoder stage: optional DBFI, convs, 2x bilinear upsample."""

    def __init__(self, widths: Sequence[int], dbfi: DBFI | None, plain_last: bool) -> None:
        super().__init__()
        self.dbfi = dbfi
        self.convs = ConvStack(widths, plain_last=plain_last)

    def forward(self, x: Tensor, deepest: Tensor, side: bool = True) -> tuple[Tensor, Tensor | None]:
        """Return the upsampled stage output and the DBFI side logits (None without a DBFI or side)."""
        side_logits = None
        if self.dbfi is not None:
            x, side_logits = self.dbfi(x, deepest, side)
        return bilinear_upsample(self.convs(x), 2), side_logits


class GlobalDecoding(NamedTuple):
    """What the global decoder produces."""

    logits: Tensor
    """3-class logits (N, 3, H, W)."""
    guidance: tuple[Tensor, ...]
    """Outputs of stages 0-3 (strides 16, 8, 4, 2), the TFI guidance of local stages 1-4."""
    sides: tuple[Tensor, ...]
    """Side logits of the DBFIs of stages 2, 3, 4 (official side2, side1, side0), full resolution."""


class GlobalDecoder(nn.Module):
    """Segmentation decoder: deepest feature -> 3-class (bg, transition, fg) logits.

    Args:
        spec: The backbone variant's decoder channel plan.
        deepest_channels: Width of the backbone's stride-32 feature.
    """

    def __init__(self, spec: DecoderSpec, deepest_channels: int) -> None:
        super().__init__()
        stages = spec.global_stages
        _check(len(stages) == NUM_DECODER_STAGES, f"global_stages has {len(stages)} stages, expected 5")
        _check(
            stages[0][0] == deepest_channels,
            f"global stage 0 reads {stages[0][0]} channels but the deepest feature has {deepest_channels}",
        )
        modules = []
        for i, widths in enumerate(stages):
            if i > 0:
                _check(
                    widths[0] == stages[i - 1][-1],
                    f"global stage {i} reads {widths[0]} channels, stage {i - 1} outputs {stages[i - 1][-1]}",
                )
            dbfi = DBFI(widths[0], deepest_channels, scale=2**i) if i in DBFI_STAGES else None
            modules.append(GlobalStage(widths, dbfi, plain_last=i == NUM_DECODER_STAGES - 1))
        self.stages = nn.ModuleList(modules)
        last = stages[-1][-1]
        if spec.global_head:
            self.head: nn.Module | None = nn.Conv2d(last, 3, kernel_size=3, padding=1)
        else:
            _check(
                last == 3, f"without a global head the last global stage must output 3 classes, not {last}"
            )
            self.head = None

    def forward(self, deepest: Tensor, sides: bool = True) -> GlobalDecoding:
        """Decode the stride-32 feature; ``sides=False`` skips the DBFI side heads (``sides`` is empty)."""
        outputs, side_logits = self._run(deepest, len(self.stages), sides)
        x = outputs[-1]
        logits = x if self.head is None else self.head(x)
        return GlobalDecoding(logits, tuple(outputs[:-1]), side_logits)

    def guidance(self, deepest: Tensor) -> tuple[Tensor, ...]:
        """Only :attr:`GlobalDecoding.guidance`: stages 0-3 without side heads (no logits are made)."""
        return self._run(deepest, len(self.stages) - 1, sides=False)[0]

    def _run(
        self, deepest: Tensor, num_stages: int, sides: bool
    ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
        x = deepest
        outputs: list[Tensor] = []
        side_logits: list[Tensor] = []
        for stage in self.stages[:num_stages]:
            x, side = stage(x, deepest, sides)
            outputs.append(x)
            if side is not None:
                side_logits.append(side)
        return tuple(outputs), tuple(side_logits)


class LocalStage(nn.Module):
    """One local decoder stage: optional TFI, optional SBFI, convs, 2x max-unpool."""

    def __init__(self, widths: Sequence[int], tfi: TFI | None, sbfi: SBFI | None) -> None:
        super().__init__()
        self.tfi = tfi
        self.sbfi = sbfi
        self.convs = ConvStack(widths)

    def forward(
        self, x: Tensor, guidance: Tensor | None, skip: Tensor | None, shallow: Tensor, indices: Tensor
    ) -> Tensor:
        """Run the stage on ``x`` and un-pool the result to twice the resolution."""
        if self.tfi is not None:
            x = self.tfi(guidance, x, skip)
        if self.sbfi is not None:
            x = self.sbfi(x, shallow)
        return F.max_unpool2d(self.convs(x), indices, kernel_size=(2, 2), stride=(2, 2))


class LocalDecoder(nn.Module):
    """Matting decoder: encoder features + global guidance -> alpha matte in [0, 1].

    Args:
        spec: The backbone variant's decoder channel plan.
        skip_channels: Widths of the backbone's skip features at strides 1, 2, 4, 8, 16.
        deepest_channels: Width of the backbone's stride-32 feature.
    """

    def __init__(self, spec: DecoderSpec, skip_channels: Sequence[int], deepest_channels: int) -> None:
        super().__init__()
        stages, guidance = spec.local_stages, spec.global_stages
        _check(len(stages) == NUM_DECODER_STAGES, f"local_stages has {len(stages)} stages, expected 5")
        _check(len(skip_channels) == len(SKIP_STRIDES), f"expected 5 skip widths, got {tuple(skip_channels)}")
        _check(
            stages[0][0] == deepest_channels,
            f"local stage 0 reads {stages[0][0]} channels but the deepest feature has {deepest_channels}",
        )
        modules = []
        for i, widths in enumerate(stages):
            tfi = sbfi = None
            if i in TFI_STAGES:
                width = guidance[i - 1][-1]
                skip = skip_channels[SKIP_STRIDES.index(stage_stride(i))]
                # TFI shares one 1x1 reduction over its three inputs, so their widths must agree.
                _check(
                    width == stages[i - 1][-1] == skip == widths[0],
                    f"local stage {i} (stride {stage_stride(i)}): TFI needs equal widths, got global "
                    f"{width}, local {stages[i - 1][-1]}, skip {skip}, stage input {widths[0]}",
                )
                tfi = TFI(width)
            else:
                _check(i == 0 or widths[0] == stages[i - 1][-1], f"local stage {i} input width mismatch")
            if i in SBFI_STAGES:
                sbfi = SBFI(widths[0], skip_channels[0], stride=stage_stride(i))
            modules.append(LocalStage(widths, tfi, sbfi))
        self.stages = nn.ModuleList(modules)
        self.head = nn.Conv2d(stages[-1][-1], 1, kernel_size=3, padding=1)

    def forward(self, features: EncoderFeatures, guidance: Sequence[Tensor]) -> Tensor:
        """Decode to an alpha matte (N, 1, H, W); ``guidance`` is :attr:`GlobalDecoding.guidance`."""
        x = features.deepest
        shallow = features.skips[0]
        for i, stage in enumerate(self.stages):
            stride = stage_stride(i)
            skip = features.skips[SKIP_STRIDES.index(stride)] if i in TFI_STAGES else None
            # Stage i works at stride 2**(5-i); indices[k] un-pools stride 2**(k+1) to 2**k.
            indices = features.indices[NUM_DECODER_STAGES - 1 - i]
            x = stage(x, guidance[i - 1] if i > 0 else None, skip, shallow, indices)
        return torch.sigmoid(self.head(x))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f"DecoderSpec does not fit the backbone's channels: {message}")
