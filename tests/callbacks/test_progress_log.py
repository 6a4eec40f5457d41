"""Progress lines: only without a terminal (unless asked), with the rate and the time left."""

from __future__ import annotations

import io
import logging
import sys
from types import SimpleNamespace

import pytest
import torch

from p3m.callbacks import progress_log
from p3m.callbacks.progress_log import ProgressLog


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_are_for_outputs_that_are_no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # a file, a pipe: what SLURM and nohup give
    assert ProgressLog().enabled
    monkeypatch.setattr(sys, "stdout", _Terminal())  # the progress bar shows progress there
    assert not ProgressLog().enabled and ProgressLog(without_terminal_only=False).enabled


def test_rate_elapsed_and_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(progress_log.time, "monotonic", lambda: now[0])
    meter = progress_log._Meter(done=10)  # resumed at step 10
    for loss in (1.0, 3.0):
        meter.add(8, torch.tensor(loss))
    now[0] += 40.0  # 2 steps of 8 images in 40 s
    assert meter.line(done=12, total=22) == "0.4 images/s | elapsed 0:00:40 | left 0:03:20"
    assert meter.mean_loss() == "2" and meter.mean_loss() == "?"  # the mean since the last line


def test_an_epoch_ending_on_a_logged_step_prints_one_line_with_its_loss(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    trainer = SimpleNamespace(
        global_step=0,
        num_training_batches=2,
        world_size=1,
        max_epochs=-1,
        current_epoch=0,
        estimated_stepping_batches=4,
    )
    callback = ProgressLog(every_n_steps=2)
    callback.on_train_start(trainer, None)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger=progress_log.__name__):
        for batch_idx in range(2):
            trainer.global_step += 1
            batch = {"image": torch.zeros(8, 3, 4, 4)}
            callback.on_train_batch_end(trainer, None, {"loss": torch.tensor(1.5)}, batch, batch_idx)  # type: ignore[arg-type]
        callback.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1 and "step 2/4" in lines[0] and "done" in lines[0], lines
    assert "loss 1.5" in lines[0] and "0.0 images/s" not in lines[0], lines
