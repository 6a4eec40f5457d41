"""Sweeps on several devices: every trial of a multirun is its own DDP run, in its own folder.

On the CPU (``trainer.devices=2 trainer.strategy=ddp``, gloo), with a tiny dataset and one step per
trial. :class:`RankRecord` makes each rank write what it trained into its trial's folder, so a rank
that ran another trial (or another sweep) shows up as a missing or different record.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import lightning as L
import optuna
import pytest

from tests.cli import run_train_cli
from tests.conftest import tiny_data_overrides

ONE_STEP_ON_TWO_PROCESSES = [
    "backbone=smoke",
    "trainer.devices=2",
    "trainer.strategy=ddp",
    "debug=limit",  # adds the trainer's limit_* keys
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=0",  # no validation: the sweep optimises the training loss
    "++optimized_metric=train/loss/total",
    "callbacks=none",
    "+callbacks.record._target_=tests.integration.test_sweep_devices.RankRecord",
    "++trainer.enable_checkpointing=false",
    "~logger",
]


class RankRecord(L.Callback):
    """Writes ``ranks/<global rank>.json`` in the run's folder: what this rank trained, and on which GPUs."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # the parameters, which DDP keeps equal on every rank (BatchNorm statistics are each rank's own)
        digest = hashlib.sha256()
        for tensor in pl_module.parameters():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        params = trainer.optimizers[0].param_groups[0]
        record = {
            "world_size": trainer.world_size,
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "lr": params.get("initial_lr", params["lr"]),
            "loss_weights": pl_module.loss.weights,
            "weights": digest.hexdigest(),
        }
        folder = Path(trainer.default_root_dir) / "ranks"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{trainer.global_rank}.json").write_text(json.dumps(record))


def _ranks(run_dir: Path) -> list[dict[str, Any]]:
    """Both ranks' records of one trial, which must agree (one DDP run, one set of hyperparameters)."""
    records = [json.loads((run_dir / "ranks" / f"{rank}.json").read_text()) for rank in (0, 1)]
    assert records[0] == records[1], run_dir
    assert records[0]["world_size"] == 2
    return records


def _only_sweep(tmp_path: Path) -> Path:
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1, f"one sweep expected, found {sweeps}"
    return sweeps[0]


@pytest.mark.slow
def test_grid_of_two_trials_on_two_processes_each(tiny_synthetic: Path, tmp_path: Path) -> None:
    common = [*tiny_data_overrides(tiny_synthetic), *ONE_STEP_ON_TWO_PROCESSES]
    result = run_train_cli(["-m", "loss=paper,no_composition", *common], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = _only_sweep(tmp_path)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert sorted(row["loss"] for row in rows) == ["no_composition", "paper"]
    assert all(row["status"] == "completed" for row in rows)
    trials = [_ranks(sweep / job)[0] for job in ("0", "1")]
    assert trials[0]["weights"] != trials[1]["weights"]
    assert trials[1]["loss_weights"]["composition"] == 0  # job 1 is loss=no_composition

    # the same trial alone (no sweep) trains the same weights
    alone = run_train_cli(["loss=no_composition", *common], tmp_path)
    assert alone.returncode == 0, alone.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert _ranks(run_dir)[0] == trials[1]


@pytest.mark.slow
def test_stored_optuna_study_with_parallel_trials_on_two_processes(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = [
        "hparams_search=p3m_optuna",
        *tiny_data_overrides(tiny_synthetic),
        *ONE_STEP_ON_TWO_PROCESSES,
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.n_jobs=2",  # Optuna proposes both trials at once ...
        "hydra/launcher=parallel",  # ... and two joblib workers train them side by side
        "hydra.launcher.n_jobs=2",
        # GPU slots on the CPU: ids no machine has, so CUDA finds no GPU and auto trains on the CPU
        "trainer.accelerator=auto",
    ]
    result = run_train_cli(args, tmp_path, env={"CUDA_VISIBLE_DEVICES": "90,91,92,93"})
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="train", storage=storage)
    assert len(study.trials) == 2
    sweep = _only_sweep(tmp_path)
    slots = set()
    for trial in study.trials:
        job = sweep / str(trial.number)
        record = _ranks(job)[0]
        assert record["lr"] == pytest.approx(trial.params["model.optimizer.lr"])
        assert record["loss_weights"]["alpha_whole"] == pytest.approx(trial.params["loss.fusion_alpha"])
        (slot,) = re.findall(r"device slot \d: CUDA_VISIBLE_DEVICES=(\S+)", (job / "train.log").read_text())
        assert record["gpus"] == slot  # the other rank stays in its trial's slot
        slots.add(slot)
    assert slots == {"90,91", "92,93"}  # two GPUs for each trial, never the same two
