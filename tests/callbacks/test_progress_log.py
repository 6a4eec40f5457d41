"""Progress lines: only without a terminal (unless asked), with the rate and the time left."""

from __future__ import annotations

import io
import sys

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
