"""The README's custom-data command: init_from needs no ImageNet file; too large a batch is a user error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import DictConfig

from p3m.data.datamodule import P3M10kDataModule
from p3m.tasks.train import _no_imagenet_weights_under_init_from
from p3m.utils.errors import UserError


def test_init_from_skips_the_imagenet_file(
    compose_config: Callable[..., DictConfig], official_weights: Callable[..., dict], tmp_path: Path
) -> None:
    weights = tmp_path / "p3mnet_pretrained_on_p3m10k.pth"
    torch.save({"state_dict": official_weights("r34", seed=5)}, weights)
    # the paper's experiment names an ImageNet file this machine does not have
    cfg = compose_config("train", ["experiment=p3mnet_r34_1xb8-150e_p3m10k", f"model.init_from={weights}"])
    assert cfg.backbone.pretrained
    _no_imagenet_weights_under_init_from(cfg)
    assert cfg.backbone.pretrained is None
    model = hydra.utils.instantiate(cfg.model)
    first = next(iter(official_weights("r34", seed=5).values()))
    assert any(torch.equal(p, first) for p in model.net.state_dict().values())


def test_a_batch_larger_than_the_training_set_names_both_numbers(tiny_synthetic: Path) -> None:
    data = P3M10kDataModule(root=tiny_synthetic, batch_size=8, num_workers=0)
    with pytest.raises(UserError, match=r"4 training samples .* data\.batch_size=8"):
        data.setup("fit")
