"""What Swin-T and ViTAE-S share: a conv + max-pool stem, then four stages of transformer tokens.

Stages 0-1 are the stem's two conv + index max-pool steps (:class:`ConvPoolStem`). Stages 2-5 each
run ``stages[i]`` on ``(N, H, W, C)`` tokens (the stem's patch embedding feeds the first); a stage's
``merge`` (:class:`MaxPoolMerge`) then emits its skip feature and pool indices and halves the map,
and after the last stage :meth:`TokenStagesBackbone.finish` gives the deepest feature. Between stages
``state.x`` is an ``(N, C, H, W)`` map.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from torch import Tensor, nn

from p3m.models.components.backbones.base import Backbone, EncoderState
from p3m.models.components.backbones.imagenet_weights import (
    EncoderLoadReport,
    load_encoder_file,
    rename_official_key,
)
from p3m.models.components.backbones.layers import ConvPoolStem


class TokenStagesBackbone(Backbone):
    """Base of the transformer encoders; subclasses build ``stem``, ``stages`` and ``_OFFICIAL_KEYS``.

    Each module of ``stages`` maps tokens to tokens and has a ``merge`` attribute (None on the last).
    """

    num_stages = 6
    stem: ConvPoolStem
    stages: nn.ModuleList
    # (official encoder key without `encoder.`, ours), read by official_encoder_key
    _OFFICIAL_KEYS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def finish(self, tokens: Tensor) -> Tensor:
        """The last stage's tokens -> the deepest feature's tokens (identity; Swin adds a norm)."""
        return tokens

    def run_stage(self, index: int, state: EncoderState) -> EncoderState:
        """Stages 0-1: stem conv + pool; 2-5: token stage ``index - 2`` (+ merge, or :meth:`finish`)."""
        if index < 2:
            state = EncoderState(state.x, list(state.skips), list(state.indices))
            return self.stem.down(index, state)
        tokens = self.stem.embed(state.x) if index == 2 else state.x.permute(0, 2, 3, 1)
        stage = self.stages[index - 2]
        tokens = stage(tokens)
        if stage.merge is None:
            deepest = self.finish(tokens).permute(0, 3, 1, 2).contiguous()
            return EncoderState(deepest, list(state.skips), list(state.indices))
        tokens, skip, indices = stage.merge(tokens)  # type: ignore[operator]  # a merge module here
        return EncoderState(tokens.permute(0, 3, 1, 2), [*state.skips, skip], [*state.indices, indices])

    @classmethod
    def official_encoder_key(cls, key: str) -> str | None:
        """Our key for an encoder key of the authors' checkpoints (with or without ``encoder.``), or None."""
        return rename_official_key(key, cls._OFFICIAL_KEYS)

    def load_pretrained(self, path: str | Path) -> EncoderLoadReport:
        """Load the authors' ImageNet file of this encoder (see :func:`load_encoder_file`)."""
        return load_encoder_file(self, path)
