"""ResNet-34 encoder of P3M-Net (ACM MM 2021), registered as ``resnet34``.

The paper's variant keeps every convolution at stride 1 (the 7x7 stem and the residual stages) and
downsamples only with five 3x3/2 max-pools (padding 1) that return their indices, which the local
decoder uses to un-pool. The pools and layers run in the official order::

    stem -> e0 (64 @ 1) -> pool -> e0p (64 @ 2) -> pool -> layer1 (64 @ 4) -> pool -> layer2 (128 @ 8)
    -> pool -> layer3 (256 @ 16) -> pool -> layer4 (512 @ 32)

Parameter names follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1..4``) without the
classifier, so torchvision/timm ResNet-34 weights and the authors' ImageNet file load directly.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

from p3m.models.components.backbones.base import Backbone, DecoderSpec, EncoderState
from p3m.models.components.backbones.registry import register_backbone
from p3m.utils.checkpoint_files import read_checkpoint
from p3m.utils.docs import WHERE_TO_GET

log = logging.getLogger(__name__)

RESNET34_DECODER_SPEC = DecoderSpec(
    global_stages=(
        (512, 512, 512, 256),
        (256, 256, 256, 128),
        (128, 128, 128, 64),
        (64, 64, 64, 64),
        (64, 64, 64, 3),
    ),
    local_stages=(
        (512, 512, 512, 256),
        (256, 256, 256, 128),
        (128, 128, 128, 64),
        (64, 64, 64, 64),
        (64, 64, 64),
    ),
    global_head=False,
)

# (output width, residual blocks) of layer1..layer4.
_LAYERS = ((64, 3), (128, 4), (256, 6), (512, 3))


def _residual_stage(in_channels: int, out_channels: int, blocks: int) -> nn.Sequential:
    """Stride-1 BasicBlocks; the first one gets a 1x1 conv + BN shortcut when the width changes."""
    downsample = None
    if in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False), nn.BatchNorm2d(out_channels)
        )
    first = BasicBlock(in_channels, out_channels, downsample=downsample)
    return nn.Sequential(first, *(BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)))


class ResNet34Backbone(Backbone):
    """ResNet-34 with stride-1 convolutions and five index-returning max-pools.

    Stages: 0 = stem + first pool (skips at strides 1 and 2), 1-4 = pool + layer1..layer4 (skips at
    strides 4, 8, 16; layer4's output is the deepest feature).
    """

    skip_channels = (64, 64, 64, 128, 256)
    deepest_channels = 512
    decoder_spec = RESNET34_DECODER_SPEC
    num_stages = 5

    # How the authors' checkpoints name this encoder (read by p3m.models.checkpoints).
    official_arch: ClassVar[str] = "r34"
    official_signatures: ClassVar[tuple[str, ...]] = ("resnet.conv1.weight", "encoder0.0.weight")
    official_decoder_prefix: ClassVar[str] = ""
    official_unused: ClassVar[tuple[str, ...]] = (r"resnet\.fc\..+",)
    # The official model registers the encoder twice: as `resnet.*` and as `encoder0..4.*`.
    _OFFICIAL_KEYS: ClassVar[tuple[tuple[str, str], ...]] = (
        (r"resnet\.((?:conv1|bn1|layer[1-4])\..+)", r"\1"),
        (r"encoder0\.0\.(.+)", r"conv1.\1"),
        (r"encoder0\.1\.(.+)", r"bn1.\1"),
        (r"encoder1\.0\.(.+)", r"layer1.\1"),
        (r"encoder([2-4])\.(.+)", r"layer\1.\2"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=1, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        widths = [64] + [w for w, _ in _LAYERS]
        for i, (width, blocks) in enumerate(_LAYERS):
            self.add_module(f"layer{i + 1}", _residual_stage(widths[i], width, blocks))
        for m in self.modules():
            # torchvision's ResNet initialisation, which the official model inherits.
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def run_stage(self, index: int, state: EncoderState) -> EncoderState:
        """Stage 0: stem + pool; stages 1-4: pool + residual layer ``index``."""
        skips, indices = list(state.skips), list(state.indices)
        if index == 0:
            e0 = F.relu(self.bn1(self.conv1(state.x)), inplace=True)  # as the official stem
            x, idx = _pool(e0)
            skips += [e0, x]
        else:
            x, idx = _pool(state.x)
            x = getattr(self, f"layer{index}")(x)
            if index < self.num_stages - 1:
                skips.append(x)
        return EncoderState(x=x, skips=skips, indices=[*indices, idx])

    @classmethod
    def official_encoder_key(cls, key: str) -> str | None:
        """Our key for an encoder key of the authors' checkpoints, or None if it is not one."""
        for pattern, replacement in cls._OFFICIAL_KEYS:
            if re.fullmatch(pattern, key):
                return re.sub(pattern, replacement, key)
        return None

    def load_pretrained(self, path: str | Path) -> None:
        """Load ImageNet weights: the authors' ``r34mp_pretrained_imagenet.pth.tar`` or any
        torchvision/timm ResNet-34 state dict (optionally under ``state_dict``, with ``module.``).

        The classifier (``fc.*``) is dropped; other missing/unexpected keys are logged.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: The file holds no ResNet-34 weights or a tensor has the wrong shape.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"ResNet-34 ImageNet weights not found at {path}: set the backbone's pretrained path "
                f"(backbone.pretrained=<file> or null; {WHERE_TO_GET})"
            )
        state = read_checkpoint(path)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path} holds a {type(state).__name__}, not a ResNet-34 state dict")
        state = {
            k.removeprefix("module."): v
            for k, v in state.items()
            if not k.removeprefix("module.").startswith("fc.")
        }
        own = self.state_dict()
        matched = own.keys() & state.keys()
        if not matched:
            raise ValueError(
                f"{path} is not a ResNet-34 state dict: expected torchvision keys such as conv1.weight and "
                f"layer1.0.conv1.weight, found {sorted(state)[:5]}"
            )
        for key in sorted(matched):
            if own[key].shape != state[key].shape:
                found, needed = tuple(state[key].shape), tuple(own[key].shape)
                raise ValueError(f"{path}: {key} has shape {found}, a ResNet-34 needs {needed}")
        result = self.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            log.warning(
                "ResNet-34 weights %s: %d missing keys %s, %d unexpected keys %s",
                path,
                len(result.missing_keys),
                result.missing_keys[:5],
                len(result.unexpected_keys),
                result.unexpected_keys[:5],
            )
        log.info("loaded ResNet-34 ImageNet weights from %s (%d tensors)", path, len(matched))


def _pool(x: Tensor) -> tuple[Tensor, Tensor]:
    return F.max_pool2d(x, kernel_size=3, stride=2, padding=1, return_indices=True)


@register_backbone
def resnet34(pretrained: str | Path | bool | None = None) -> ResNet34Backbone:
    """P3M-Net's ResNet-34 encoder.

    Args:
        pretrained: Path of ImageNet ResNet-34 weights (see :meth:`ResNet34Backbone.load_pretrained`);
            None/False for random initialisation. Nothing is ever downloaded.
    """
    if pretrained is True:
        raise ValueError(
            "resnet34(pretrained=True) needs a file: pass the path of r34mp_pretrained_imagenet.pth.tar "
            "or of a torchvision ResNet-34 state dict"
        )
    model = ResNet34Backbone()
    if pretrained:
        model.load_pretrained(pretrained)
    return model
