"""Every config composes, every experiment instantiates, and every key documents itself."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import hydra
import pytest
from omegaconf import DictConfig

from tests.conftest import REPO_ROOT, tiny_data_overrides

CONF = REPO_ROOT / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
GROUP_OPTIONS = [
    (group, p.stem)
    for group in ("data", "backbone", "augmentation", "privacy", "loss", "trainer", "logger", "debug")
    for p in sorted((CONF / group).glob("*.yaml"))
]
ENTRY_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))
# `key: value` on one line; such a line must say what the key does in a trailing comment.
LEAF = re.compile(r"^\s*[A-Za-z0-9_.-]+:\s*[^\s#]")
SELF_EXPLANATORY = re.compile(r"^\s*(_target_|_partial_|_convert_):")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(
    experiment: str, compose_config: Callable[..., DictConfig], tiny_synthetic: Path
) -> None:
    # ImageNet weights cannot be downloaded here: the paper run names a file that is absent
    overrides = [
        f"experiment={experiment}",
        "data.root=/nonexistent",
        "logger=csv",
        "backbone.pretrained=null",
    ]
    cfg = compose_config("train", overrides)
    assert cfg.task_name
    model = hydra.utils.instantiate(cfg.model)
    assert sum(p.numel() for p in model.net.parameters()) > 0
    datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg=False)
    assert [s.name for s in datamodule.eval_splits] == ["P3M-500-P", "P3M-500-NP"]


def test_missing_imagenet_weights_name_the_key(compose_config: Callable[..., DictConfig]) -> None:
    cfg = compose_config("train", ["experiment=p3mnet_r34_1xb8-150e_p3m10k"])
    with pytest.raises(Exception, match=r"r34mp_pretrained_imagenet\.pth\.tar.*pretrained"):
        hydra.utils.instantiate(cfg.model)


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_group_option_composes(
    group: str, option: str, compose_config: Callable[..., DictConfig]
) -> None:
    cfg = compose_config("train", [f"{group}={option}"])
    assert cfg.model._target_.endswith("P3MLitModule")


@pytest.mark.parametrize("name", ENTRY_CONFIGS)
def test_every_entry_point_config_composes(name: str, compose_config: Callable[..., DictConfig]) -> None:
    cfg = compose_config(name)
    assert cfg.paths.root_dir == str(REPO_ROOT)


def test_default_training_is_the_paper_setting(compose_config: Callable[..., DictConfig]) -> None:
    cfg = compose_config("train")
    assert cfg.backbone.name == "resnet34" and cfg.privacy._target_ == "p3m.privacy.modes.PPT"
    assert cfg.model.optimizer.lr == 1e-5 and cfg.data.batch_size == 8 and cfg.trainer.max_epochs == 150
    loss = hydra.utils.instantiate(cfg.loss)
    assert loss.weights["alpha_whole"] == 3.0 and loss.weights["ce_global"] == pytest.approx(0.5)
    assert cfg.callbacks.model_checkpoint.monitor == "val/p/sad"


def test_unknown_option_names_the_group(compose_config: Callable[..., DictConfig]) -> None:
    with pytest.raises(Exception, match="backbone"):
        compose_config("train", ["backbone=resnet35"])


def test_tiny_overrides_compose(compose_config: Callable[..., DictConfig], tiny_synthetic: Path) -> None:
    cfg = compose_config("train", tiny_data_overrides(tiny_synthetic))
    assert cfg.data.root == str(tiny_synthetic) and cfg.trainer.accelerator == "cpu"


def test_every_config_key_has_a_comment() -> None:
    undocumented = []
    for path in sorted(CONF.rglob("*.yaml")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if LEAF.match(line) and not SELF_EXPLANATORY.match(line) and "#" not in line:
                undocumented.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert not undocumented, "keys without a comment:\n" + "\n".join(undocumented)
