"""A checkpoint written before the package was renamed (``src`` -> ``p3m``) loads, resumes and predicts.

The fixture (tests/fixtures/old_main, provenance in tests/fixtures/README.md) is the last.ckpt of a
one-epoch run of the toy backbone of tests/integration/test_extending.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig

import p3m
import p3m.models.components.backbones.registry as backbone_registry
from p3m.data.io import read_image, read_mask
from p3m.models.checkpoints import load_checkpoint_state
from p3m.models.components.backbones import register_backbone
from p3m.tasks.predict import run_prediction
from p3m.tasks.train import train
from p3m.utils.checkpoint_files import read_checkpoint
from p3m.utils.config_checks import ConfigCheck
from p3m.utils.errors import UserError
from tests.conftest import tiny_data_overrides
from tests.fixtures import FIXTURES_DIR
from tests.integration.test_extending import tiny

OLD_CHECKPOINT = FIXTURES_DIR / "old_main" / "tiny_synthetic_epoch0.ckpt"


@pytest.fixture
def tiny_backbone() -> Iterator[None]:
    register_backbone(tiny)
    try:
        yield
    finally:
        backbone_registry._REGISTRY.pop("tiny")


def test_it_loads_as_a_network(tiny_backbone: None) -> None:
    state = load_checkpoint_state(OLD_CHECKPOINT)
    assert (state.backbone, state.source) == ("tiny", "lightning")
    net = p3m.load_model(OLD_CHECKPOINT)
    assert net.backbone_name == "tiny" and not net.training
    raw = read_checkpoint(OLD_CHECKPOINT)
    assert (raw["epoch"], raw["global_step"]) == (0, 2)


@pytest.mark.slow
def test_it_resumes_one_more_epoch(
    tiny_backbone: None, compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tmp_path: Path
) -> None:
    ckpt = tmp_path / "old.ckpt"
    shutil.copy(OLD_CHECKPOINT, ckpt)  # resuming never writes over it, but the fixture stays read-only
    overrides = [*tiny_data_overrides(tiny_synthetic), "backbone.name=tiny", "logger=csv"]
    cfg = compose_config(
        "train", [*overrides, "trainer.max_epochs=2", "model.heavy_every_n_epochs=0", f"ckpt_path={ckpt}"]
    )
    train(cfg)
    last = read_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (1, 4)  # continued from step 2, not restarted
    assert last["optimizer_states"][0]["state"], "the optimiser state came along"


def test_it_predicts(
    tiny_backbone: None, compose_config: Callable[..., DictConfig], samples_dir: Path, tmp_path: Path
) -> None:
    photo = next((samples_dir / "validation" / "P3M-500-NP" / "original_image").iterdir())
    cfg = compose_config(
        "predict",
        [
            f"ckpt_path={OLD_CHECKPOINT}",
            f"input={photo}",
            f"output={tmp_path / 'out'}",
            "test_strategy=resize",
        ],
    )
    summary = run_prediction(cfg)
    assert summary.written == [photo] and not summary.failed
    alpha = read_mask(tmp_path / "out" / "alpha" / f"{photo.stem}.png")
    assert alpha.shape == read_image(photo).shape[:2]
    assert alpha.dtype == np.uint8 and alpha.max() > alpha.min()  # a matte, not a constant


def test_a_config_naming_the_old_package_says_what_to_write(
    compose_config: Callable[..., DictConfig],
) -> None:
    cfg = compose_config("train", ["privacy._target_=src.privacy.modes.PPT"])
    with pytest.raises(
        UserError, match=r"privacy._target_=src.privacy.modes.PPT: .* write p3m.privacy.modes.PPT"
    ):
        ConfigCheck()(cfg)
