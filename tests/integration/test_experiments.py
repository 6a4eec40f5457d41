"""Every experiment file trains for one batch (fast_dev_run) on the tiny synthetic dataset."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from p3m.tasks.train import train
from tests.conftest import REPO_ROOT, tiny_data_overrides

EXPERIMENTS = sorted(p.stem for p in (REPO_ROOT / "conf" / "experiment").glob("*.yaml"))
# model, backbone, GPUs x batch, schedule and data, as mmagic names its configs
NAME = r"^p3mnet(-[a-z0-9]+)*_(r34|swin|vitae)_\d+xb\d+-\d+e_[a-z0-9]+$"


def test_experiment_names_encode_the_run() -> None:
    paper_runs = [e for e in EXPERIMENTS if e != "demo"]
    assert len(paper_runs) >= 9
    for name in paper_runs:
        assert re.match(NAME, name), name


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_one_batch_on_synthetic_data(
    experiment: str, compose_config: Callable[..., DictConfig], tiny_synthetic: Path
) -> None:
    overrides = [
        f"experiment={experiment}",
        *tiny_data_overrides(tiny_synthetic),  # data=synthetic and trainer=cpu replace the paper's
        "debug=fdr",
        "backbone.pretrained=null",  # ImageNet weights cannot be downloaded here
        "trainer.devices=1",  # the multi-GPU runs too, on one CPU process
    ]
    cfg = compose_config("train", overrides)
    assert cfg.task_name == experiment
    metrics = train(cfg)
    assert metrics["train/loss/total"] > 0
    assert metrics["val/p/sad"] >= 0 and metrics["val/np/sad"] >= 0
