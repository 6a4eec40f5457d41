"""Faults: exact resumption, a checkpoint on SIGTERM, and no training on NaN losses."""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lightning import Callback, LightningModule, Trainer
from omegaconf import DictConfig

from p3m.callbacks.rng_state import (
    capture_dataset_generators,
    capture_global_rng,
    restore_dataset_generators,
    restore_global_rng,
)
from p3m.tasks.train import train
from p3m.utils.errors import EXIT_TERMINATED
from p3m.utils.run import task_wrapper
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
    class Holder:
        def __init__(self) -> None:
            self.rng = np.random.default_rng(7)
            self.lazy: np.random.Generator | None = None

    holder = Holder()
    holder.rng.random(3)
    torch.save(
        {"global": capture_global_rng(), "dataset": capture_dataset_generators(holder)}, tmp_path / "s.pt"
    )
    expected = (torch.rand(2), np.random.rand(2), holder.rng.random(2))
    expected_py = random.random()

    state = torch.load(tmp_path / "s.pt", weights_only=True)  # plain types only: loads without pickle
    restore_global_rng(state["global"])
    fresh = Holder()
    restore_dataset_generators(fresh, state["dataset"])
    assert torch.equal(torch.rand(2), expected[0]) and np.array_equal(np.random.rand(2), expected[1])
    assert random.random() == expected_py
    assert np.array_equal(fresh.rng.random(2), expected[2]) and fresh.lazy is None


@pytest.mark.slow
def test_resumed_run_ends_like_an_uninterrupted_one(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tmp_path: Path
) -> None:
    base = [
        *tiny_data_overrides(tiny_synthetic),
        "debug=limit",  # 2 epochs
        "trainer.limit_train_batches=1",  # of one batch, drawn from a shuffled 4 images
        "logger=csv",
        "trainer.deterministic=warn",  # max_unpool2d has no kernel flagged deterministic
        # a worker process, as real runs: its seeds come from torch's RNG (the generators of a
        # dataset read in the main process are covered by the round-trip test above)
        "data.num_workers=1",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
        # last.ckpt only (each file holds 39 M weights plus Adam's moments: writing is the slow part)
        "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.save_top_k=0",
    ]
    straight = train(compose_config("train", base))
    straight_dir = _move_run(tmp_path, "straight")

    train(compose_config("train", [*base, "trainer.max_epochs=1"]))
    first_dir = _move_run(tmp_path, "first")
    first = _load(first_dir / "checkpoints" / "last.ckpt")
    assert first["global_step"] == 1 and len(first["rng_states"]) == 1

    resumed = train(compose_config("train", [*base, f"ckpt_path={first_dir / 'checkpoints' / 'last.ckpt'}"]))
    a = _load(straight_dir / "checkpoints" / "last.ckpt")
    b = _load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) and a["global_step"] == 2
    assert _max_weight_difference(a["state_dict"], b["state_dict"]) == 0.0
    for name, value in straight.items():
        assert float(resumed[name]) == float(value), name

    # the control: the same resume without the RNG states draws other crops and ends elsewhere
    del first["rng_states"]
    torch.save(first, tmp_path / "no_rng.ckpt")
    _move_run(tmp_path, "resumed")
    train(compose_config("train", [*base, f"ckpt_path={tmp_path / 'no_rng.ckpt'}"]))
    c = _load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert _max_weight_difference(a["state_dict"], c["state_dict"]) > 0.0


class SigtermAt(Callback):
    """Test helper: the process sends itself SIGTERM after training batch ``batch`` of the first epoch."""

    def __init__(self, batch: int = 0) -> None:
        self.batch = batch

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Pre-empt the run."""
        if trainer.current_epoch == 0 and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_a_checkpoint_that_resumes(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tmp_path: Path
) -> None:
    base = [*tiny_data_overrides(tiny_synthetic), "debug=limit", "logger=csv", "trainer.max_epochs=1"]
    killer = [
        "+callbacks.sigterm._target_=tests.integration.test_resume.SigtermAt",
        "+callbacks.sigterm.batch=0",
    ]
    with pytest.raises(SystemExit) as info:  # Lightning's SIGTERMException, a SystemExit without a code
        task_wrapper(train)(compose_config("train", [*base, *killer]))
    assert info.value.code == EXIT_TERMINATED  # 143, as a shell reports a process killed by SIGTERM
    saved = _move_run(tmp_path, "killed") / "checkpoints" / "last.ckpt"
    checkpoint = _load(saved)
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (0, 1)  # after the first of two batches
    assert checkpoint["rng_states"] and checkpoint["optimizer_states"][0]["state"]

    train(compose_config("train", [*base, f"ckpt_path={saved}"]))
    finished = _load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert (finished["epoch"], finished["global_step"]) == (0, 2)  # only the missing batch was trained


@pytest.mark.slow
def test_nan_loss_stops_the_run_with_a_clear_message(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path
) -> None:
    overrides = [
        *tiny_data_overrides(tiny_synthetic),
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
