"""End-to-end training on the CPU: fast_dev_run, checkpoints and resume, DDP, multirun, real samples."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from lightning import Callback, LightningModule, Trainer
from omegaconf import DictConfig

from p3m.data.fgbg import prepare_fg_bg
from p3m.tasks.train import train
from p3m.utils.checkpoint_files import read_checkpoint
from tests.cli import run_python
from tests.conftest import REPO_ROOT, tiny_data_overrides

LOSS_TERMS = ("ce_global", "ce_side2", "alpha_unknown", "laplacian_whole", "composition", "total")


def test_fast_dev_run_logs_every_term_and_split(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path
) -> None:
    cfg = compose_config("train", [*tiny_data_overrides(tiny_synthetic), "debug=fdr"])
    metrics = train(cfg)
    for term in LOSS_TERMS:
        assert f"train/loss/{term}" in metrics
    for prefix in ("val/p", "val/np"):
        for name in ("sad", "mse", "mad", "sad_t", "sad_fg", "sad_bg"):
            assert metrics[f"{prefix}/{name}"] >= 0


class WorseEveryEpoch(Callback):
    """Test helper: logs ``test/worse`` = the epoch at each validation, a metric that only gets worse."""

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the worsening metric."""
        pl_module.log("test/worse", float(trainer.current_epoch))


def _position(path: Path) -> tuple[int, int]:
    checkpoint = read_checkpoint(path, mmap=True)  # mapped: only the loop counters are read
    return checkpoint["epoch"], checkpoint["global_step"]


def test_limit_run_checkpoints_then_resumes_from_latest(
    compose_config: Callable[..., DictConfig],
    tiny_synthetic: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    overrides = [
        *tiny_data_overrides(tiny_synthetic),
        "backbone=smoke",
        "debug=limit",  # 2 epochs of 2 batches (4 images, batch 2)
        "logger=csv",
        "task_name=resume_test",
        # the monitored metric gets worse every epoch: the best checkpoint stays at epoch 0
        "+callbacks.worse._target_=tests.integration.test_train.WorseEveryEpoch",
        "callbacks.model_checkpoint.monitor=test/worse",
    ]
    caplog.set_level(logging.INFO, logger="p3m.tasks.train")
    train(compose_config("train", overrides))
    checkpoints = tmp_path / "run" / "checkpoints"
    assert {p.name for p in checkpoints.iterdir()} == {"last.ckpt", "epoch_000.ckpt"}  # no last-v1.ckpt
    assert _position(checkpoints / "last.ckpt") == (1, 4)  # the end of the newest epoch, not the best
    report = f"Best checkpoint: {checkpoints / 'epoch_000.ckpt'} | last: {checkpoints / 'last.ckpt'}"
    assert report in caplog.text
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "version_0" / "metrics.csv").open()))
    assert any(row.get("val/p/sad") for row in rows) and any(row.get("val/np/sad") for row in rows)

    # a second run resumes the newest run of the task (ckpt_path=latest) and trains one more epoch
    (tmp_path / "logs" / "resume_test" / "runs" / "first").mkdir(parents=True)
    (tmp_path / "run").rename(tmp_path / "logs" / "resume_test" / "runs" / "first" / "run")
    resumed = compose_config("train", [*overrides, "ckpt_path=latest", "trainer.max_epochs=3"])
    metrics = train(resumed)
    assert "train/loss/total" in metrics
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "version_0" / "metrics.csv").open()))
    epochs = {int(row["epoch"]) for row in rows if row.get("epoch")}
    assert epochs == {2}, f"the resumed run should train only epoch 2, logged {epochs}"
    assert _position(tmp_path / "run" / "checkpoints" / "last.ckpt") == (2, 6)


def test_missing_fg_bg_names_the_prepare_command(
    compose_config: Callable[..., DictConfig], samples_copy: Path
) -> None:
    cfg = compose_config("train", [f"data.root={samples_copy}", "trainer=cpu", "debug=fdr"])
    with pytest.raises(Exception, match=r"p3m prepare"):
        train(cfg)


@pytest.mark.slow
def test_training_on_real_samples_lowers_the_loss(
    compose_config: Callable[..., DictConfig], samples_copy: Path, tmp_path: Path
) -> None:
    summary = prepare_fg_bg(samples_copy, workers=1, progress=False)
    assert summary.ok and len(summary.written) == 4
    overrides = [
        f"data.root={samples_copy}",
        "trainer=cpu",
        "debug=overfit",
        "trainer.max_epochs=20",
        "trainer.check_val_every_n_epoch=20",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.train_size=96",  # paper crops (512..1024 px of the 1080 px portraits) resized to 96
        "data.limit_eval_samples=1",
        "model.optimizer.lr=1e-3",
        "model.val_strategy=resize",
        "model.heavy_every_n_epochs=0",  # the loss is checked, not the full-size connectivity metrics
        "trainer.num_sanity_val_steps=0",
    ]
    train(compose_config("train", overrides))
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "version_0" / "metrics.csv").open()))
    losses = [float(r["train/loss/total"]) for r in rows if r.get("train/loss/total")]
    assert len(losses) == 20
    # each step draws a new random crop of the same images, so compare means of five steps
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, f"loss did not fall: first {first:.3f}, last {last:.3f}"


def _run_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, str(REPO_ROOT / "src" / "train.py"), *args, f"paths.log_dir={tmp_path / 'logs'}"]
    return run_python(cmd, cwd=tmp_path, env=env)


@pytest.mark.slow
def test_cli_ddp_on_two_cpu_processes(tiny_synthetic: Path, tmp_path: Path) -> None:
    args = [
        *tiny_data_overrides(tiny_synthetic),
        "backbone=smoke",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "debug=limit",
    ]
    result = _run_cli([*args, "logger=csv", "trainer.max_epochs=1"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((tmp_path / "logs" / "train" / "runs").glob("*/checkpoints/last.ckpt"))
