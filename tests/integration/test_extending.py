"""The recipes of docs/extending.md work: a toy backbone, a toy privacy mode and a toy metric are each
registered the documented way and used together in one training run composed with Hydra."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

import p3m.metrics.matting as matting
import p3m.models.components.backbones.registry as backbone_registry
from p3m.data.layout import BLURRED_READS, TrainingReads
from p3m.metrics import PerImageMattingMetric, register_metric
from p3m.models.components.backbones import Backbone, DecoderSpec, EncoderState, register_backbone
from p3m.privacy.modes import PrivacyMode
from p3m.tasks.train import train
from tests.conftest import tiny_data_overrides

WIDTH = 8


class TinyBackbone(Backbone):
    """Five conv + index-returning max-pool stages of 8 channels: the contract, nothing more."""

    skip_channels = (WIDTH,) * 5
    deepest_channels = 2 * WIDTH
    num_stages = 5
    decoder_spec = DecoderSpec(
        global_stages=((16, 16, 8), (8, 8, 8), (8, 8, 8), (8, 8, 8), (8, 8, 3)),
        local_stages=((16, 16, 8), (8, 8, 8), (8, 8, 8), (8, 8, 8), (8, 8)),
        global_head=False,
    )

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else WIDTH, WIDTH, 3, padding=1) for i in range(5))
        self.deepest = nn.Conv2d(WIDTH, 2 * WIDTH, 1)

    def run_stage(self, index: int, state: EncoderState) -> EncoderState:
        skip = F.relu(self.convs[index](state.x))
        x, idx = F.max_pool2d(skip, 2, return_indices=True)
        if index == self.num_stages - 1:
            x = self.deepest(x)
        return EncoderState(x=x, skips=[*state.skips, skip], indices=[*state.indices, idx])


def tiny(pretrained: str | None = None) -> Backbone:
    """The factory: its function name is the backbone's name (``backbone.name=tiny``); the backbone
    group passes ``pretrained`` (ImageNet weights) and any other keys of its YAML."""
    if pretrained:
        raise ValueError("the tiny backbone has no pretrained weights")
    return TinyBackbone()


@dataclass(frozen=True)
class CountingMode(PrivacyMode):
    """PPT's folders, plus a sample step that counts its calls (and inverts nothing)."""

    name: ClassVar[str] = "counting"
    reads: ClassVar[TrainingReads] = BLURRED_READS
    calls: ClassVar[list[int]] = []

    def sample_hook(self, root: str | Path | None) -> tuple[Any, tuple[Path, ...]]:
        def hook(sample: dict, transform: Any, rng: np.random.Generator, privacy_rng: Any) -> Any:
            CountingMode.calls.append(1)
            return transform(sample, rng)

        return hook, ()

    def training_forward(self, net: nn.Module, image: Tensor, batch: Mapping[str, Tensor]) -> Any:
        CountingMode.calls.append(2)
        return net(image)


class MaxError(PerImageMattingMetric):
    """The largest per-pixel error of an image, mean over images."""

    score_fn = staticmethod(lambda pred, target: (pred - target).abs().flatten(1).amax(dim=1))


@pytest.fixture
def registries() -> Iterator[None]:
    """Register the toys the documented way, and take them out again so other tests never see them."""
    register_backbone(tiny)
    register_metric("max_error")(MaxError)
    CountingMode.calls.clear()
    try:
        yield
    finally:
        backbone_registry._REGISTRY.pop("tiny")
        matting.METRIC_CLASSES.pop("max_error")


def test_metric_registration_declares_the_name_once(registries: None) -> None:
    assert matting.METRIC_CLASSES["max_error"] is MaxError
    with pytest.raises(ValueError, match="already registered"):
        register_metric("sad")(MaxError)


@pytest.mark.slow
def test_a_toy_backbone_privacy_mode_and_metric_train_together(
    registries: None, compose_config: Callable[..., DictConfig], tiny_synthetic: Path
) -> None:
    cfg = compose_config(
        "train",
        [
            *tiny_data_overrides(tiny_synthetic),
            "backbone.name=tiny",
            "privacy._target_=tests.integration.test_extending.CountingMode",
            "model.val_metrics=[sad,max_error]",
            "debug=fdr",
        ],
    )
    metrics = train(cfg)
    assert 1 in CountingMode.calls and 2 in CountingMode.calls  # sample step and training forward ran
    assert math.isfinite(float(metrics["val/p/max_error"])) and "val/p/sad" in metrics
    assert 0.0 <= float(metrics["val/p/max_error"]) <= 1.0
