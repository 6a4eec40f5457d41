"""P3M-Net: a shared encoder, a global (segmentation) and a local (matting) decoder, fused.

The encoder is any registered backbone; both decoders and the integration modules (TFI, SBFI,
DBFI) are built from the backbone's :class:`DecoderSpec` and declared channels, so the one class
covers the ResNet-34, Swin-T and ViTAE-S variants of the papers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

from torch import Tensor, nn

from p3m.models.components.backbones import Backbone, EncoderFeatures, create_backbone
from p3m.models.components.decoders import GlobalDecoder, LocalDecoder
from p3m.models.components.feature_paste import paste_features, source_pass_batchnorm

CLASS_BACKGROUND, CLASS_TRANSITION, CLASS_FOREGROUND = 0, 1, 2


class P3MOutput(NamedTuple):
    """P3M-Net's outputs in the official order (indexable like the official 6-tuple)."""

    global_logits: Tensor
    """3-class (bg, transition, fg) logits (N, 3, H, W)."""
    local_alpha: Tensor
    """Alpha matte of the local decoder (N, 1, H, W), after the sigmoid."""
    fusion_alpha: Tensor
    """Final alpha (N, 1, H, W): 0 / local alpha / 1 where the global class is bg / transition / fg."""
    side2: Tensor
    """3-class side logits of the stride-8 DBFI, upsampled to (N, 3, H, W)."""
    side1: Tensor
    """3-class side logits of the stride-4 DBFI, upsampled to (N, 3, H, W)."""
    side0: Tensor
    """3-class side logits of the stride-2 DBFI, upsampled to (N, 3, H, W)."""


def fuse_global_local(global_logits: Tensor, local_alpha: Tensor) -> Tensor:
    """P3M-Net's fusion rule: take the arg-max class of the global logits per pixel and return 0 for
    background, the local alpha for transition and 1 for foreground.

    Written as masks times alpha (not a ``where``) so the gradient reaches ``local_alpha`` exactly
    where the official rule sends it: on transition pixels only.

    Args:
        global_logits: (N, 3, H, W) logits or probabilities.
        local_alpha: (N, 1, H, W) alpha in [0, 1].
    """
    # max(...).indices, not argmax: the same first-maximum index, but torch's CPU argmax over the
    # 3-channel dim is far slower, which showed in the training step (docs/performance.md).
    classes = global_logits.max(dim=1, keepdim=True).indices
    transition = (classes == CLASS_TRANSITION).to(local_alpha.dtype)
    foreground = (classes == CLASS_FOREGROUND).to(local_alpha.dtype)
    return local_alpha * transition + foreground


class P3MNet(nn.Module):
    """P3M-Net (Li et al., ACM MM 2021; Ma et al., IJCV 2023).

    Args:
        backbone: A registered backbone name (``resnet34``, ...) or a built :class:`Backbone`.
        backbone_kwargs: For a backbone given by name, its factory's arguments (e.g. ``pretrained``:
            a path to ImageNet weights; None for random init).

    Attributes:
        backbone_name: The registered name (checkpoints and logs say which P3M-Net this is); a
            backbone built by hand goes by its class name.
    """

    def __init__(self, backbone: str | Backbone = "resnet34", **backbone_kwargs: Any) -> None:
        super().__init__()
        if isinstance(backbone, str):
            self.backbone_name = backbone
            kwargs = {k: v for k, v in backbone_kwargs.items() if k != "pretrained" or v}
            backbone = create_backbone(backbone, **kwargs)
        elif backbone_kwargs:
            raise ValueError(
                f"{sorted(backbone_kwargs)} only apply to a backbone given by name; configure your Backbone"
            )
        else:
            self.backbone_name = type(backbone).__name__
        self.backbone = backbone
        spec = backbone.decoder_spec
        self.global_decoder = GlobalDecoder(spec, backbone.deepest_channels)
        self.local_decoder = LocalDecoder(spec, backbone.skip_channels, backbone.deepest_channels)

    def forward(self, image: Tensor) -> P3MOutput:
        """Predict from an ImageNet-normalised RGB batch (N, 3, H, W), H and W multiples of 32."""
        return self.decode(self.backbone(_checked(image)))

    def segment(self, image: Tensor) -> Tensor:
        """Only the global logits (N, 3, H, W), as :meth:`forward` computes them, without the local
        decoder and the side heads: what HYBRID's half-size pass needs."""
        return self.global_decoder(self.backbone(_checked(image)).deepest, sides=False).logits

    def matte(self, image: Tensor) -> Tensor:
        """Only the local alpha (N, 1, H, W), as :meth:`forward` computes it, without the global
        decoder's last stage and side heads: what HYBRID's full-size pass needs."""
        features = self.backbone(_checked(image))
        return self.local_decoder(features, self.global_decoder.guidance(features.deepest))

    def forward_feature_paste(self, image: Tensor, source: Tensor, mask: Tensor, stage: int) -> P3MOutput:
        """P3M-FCP's training forward: ``source``'s features pasted into ``image``'s after ``stage``
        encoder stages, inside ``mask`` (see :mod:`p3m.models.components.feature_paste`).

        Every skip feature recorded by the first ``stage`` stages and every max-pool index are the
        target's: the paste replaces only the running feature the remaining stages consume. The
        source pass runs even when nothing is pasted: under DDP with SyncBatchNorm every rank must
        run the same layers. Gradients flow through both passes.

        Args:
            image: the target batch (N, 3, H, W), ImageNet-normalised.
            source: the pasted images, normalised like ``image``.
            mask: (N, 1, H, W) paste mask in [0, 1].
            stage: encoder stages before the paste, 1 .. ``backbone.num_stages``.
        """
        backbone = self.backbone
        if isinstance(stage, bool) or not isinstance(stage, int) or not 1 <= stage <= backbone.num_stages:
            raise ValueError(
                f"privacy.stage={stage!r} is outside 1..{backbone.num_stages} ({type(backbone).__name__} "
                f"has {backbone.num_stages} encoder stages)"
            )
        if source.shape != image.shape:
            raise ValueError(f"cp_source {tuple(source.shape)} must match image {tuple(image.shape)}")
        target_state = backbone.forward_stages(_checked(image), end=stage)
        with source_pass_batchnorm(backbone):
            source_state = backbone.forward_stages(source, end=stage)
        merged = paste_features(target_state.x, source_state.x, mask)
        state = backbone.forward_stages(dataclasses.replace(target_state, x=merged), start=stage)
        return self.decode(EncoderFeatures(tuple(state.skips), state.x, tuple(state.indices)))

    def decode(self, features: EncoderFeatures) -> P3MOutput:
        """Run both decoders on encoder features (e.g. edited between backbone stages) and fuse."""
        decoded = self.global_decoder(features.deepest)
        local_alpha = self.local_decoder(features, decoded.guidance)
        fusion = fuse_global_local(decoded.logits, local_alpha)
        return P3MOutput(decoded.logits, local_alpha, fusion, *decoded.sides)


def _checked(image: Tensor) -> Tensor:
    if image.ndim != 4 or image.shape[1] != 3 or image.shape[2] % 32 or image.shape[3] % 32:
        raise ValueError(
            f"P3MNet expects an (N, 3, H, W) image, H and W multiples of 32, got {tuple(image.shape)}: "
            "pad or resize it first (see p3m.models.test_time)"
        )
    return image


def build_p3mnet(backbone: Mapping[str, Any]) -> P3MNet:
    """P3M-Net from the ``backbone`` config group: ``name`` plus the factory's keyword arguments."""
    kwargs = dict(backbone)
    return P3MNet(kwargs.pop("name"), **kwargs)
