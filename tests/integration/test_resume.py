"""Faults: random states in a checkpoint, and no training on NaN losses."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from p3m.callbacks.rng_state import capture_global_rng, restore_global_rng
from p3m.data.datasets import P3M10kTrainDataset
from p3m.data.layout import TrainSplit
from p3m.data.transforms import PaperTransform
from p3m.tasks.train import train
from tests.conftest import tiny_data_overrides


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _move_run(tmp_path: Path, name: str) -> Path:
    """compose_config writes every run to <tmp>/run: keep this one under another name."""
    return (tmp_path / "run").rename(tmp_path / name)


def _max_weight_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a)


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    def dataset() -> P3M10kTrainDataset:
        return P3M10kTrainDataset(TrainSplit(files=(), read_dirs=(), privacy_mode="ppt"), PaperTransform())

    training_set = dataset()
    training_set.reseed(7)
    training_set.rng.random(3)
    torch.save({"global": capture_global_rng(), "dataset": training_set.state_dict()}, tmp_path / "s.pt")
    expected = (torch.rand(2), np.random.rand(2), training_set.rng.random(2))
    expected_py = random.random()

    state = torch.load(tmp_path / "s.pt", weights_only=True)  # plain types only: loads without pickle
    restore_global_rng(state["global"])
    fresh = dataset()
    fresh.load_state_dict(state["dataset"])
    assert torch.equal(torch.rand(2), expected[0]) and np.array_equal(np.random.rand(2), expected[1])
    assert random.random() == expected_py
    assert np.array_equal(fresh.rng.random(2), expected[2])


# Resuming a run, in the middle of an epoch or at its end, and the SIGTERM checkpoint:
# tests/integration/test_resume_exact.py


@pytest.mark.slow
def test_nan_loss_stops_the_run_with_a_clear_message(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path
) -> None:
    overrides = [
        *tiny_data_overrides(tiny_synthetic),
        "backbone=smoke",
        "debug=limit",
        "logger=csv",
        "loss.composition=nan",  # every step's loss is NaN
        "callbacks.nan_guard.action=skip",
        "callbacks.nan_guard.max_consecutive_skips=2",
    ]
    with pytest.raises(FloatingPointError, match=r"2 non-finite steps in a row \(loss nan\) at epoch 0"):
        train(compose_config("train", overrides))


@pytest.mark.slow
def test_nan_guard_skip_leaves_the_weights_untouched(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tmp_path: Path
) -> None:
    overrides = [
        *tiny_data_overrides(tiny_synthetic),
        "backbone=smoke",
        "debug=limit",
        "logger=csv",
        "trainer.max_epochs=1",
        "loss.composition=nan",
        "callbacks.nan_guard.action=skip",
        "callbacks.model_checkpoint.monitor=null",
    ]
    metrics = train(compose_config("train", overrides))
    assert metrics["train/skipped_steps"] == 2
    checkpoint = _load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert checkpoint["optimizer_states"][0]["state"] == {}  # Adam never stepped
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_nan_guard_raises_by_default(compose_config: Callable[..., DictConfig]) -> None:
    assert compose_config("train").callbacks.nan_guard.action == "raise"
