"""Fixtures of the evaluation and prediction tests: a checkpoint and the overrides of a tiny dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from p3m.models import P3MNet
from tests.conftest import TINY_SYNTHETIC


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised ResNet-34 P3M-Net saved as our Lightning checkpoints hold it."""
    torch.manual_seed(0)
    state = P3MNet("resnet34").state_dict()
    path = tmp_path_factory.mktemp("checkpoint") / "random_r34.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, path)
    return path


def eval_data_overrides(root: Path) -> list[str]:
    """``data=synthetic`` at the session's tiny dataset (the parameters must match or it is rewritten)."""
    height, width = TINY_SYNTHETIC["size"]
    return [
        "data=synthetic",
        f"data.root={root}",
        f"data.synthetic.num_train={TINY_SYNTHETIC['num_train']}",
        f"data.synthetic.num_test={TINY_SYNTHETIC['num_test']}",
        f"data.synthetic.size=[{height},{width}]",
        f"data.synthetic.seed={TINY_SYNTHETIC['seed']}",
        "data.num_workers=0",
        "device=cpu",
    ]
