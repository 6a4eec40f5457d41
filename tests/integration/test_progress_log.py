"""A run whose output is not a terminal logs its progress: training steps, epoch ends, evaluation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli import run_train_cli
from tests.conftest import tiny_data_overrides

TIME = r"\d+:\d\d:\d\d"
RATE = rf"[\d.]+ images/s \| elapsed {TIME} \| left {TIME}"


@pytest.mark.slow
def test_training_without_a_terminal_logs_progress_lines(tiny_synthetic: Path, tmp_path: Path) -> None:
    args = [
        *tiny_data_overrides(tiny_synthetic),
        "backbone=smoke",
        "debug=limit",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=2",  # 4 steps of 2 images
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
        "callbacks=none",
        "+callbacks.progress_log._target_=p3m.callbacks.progress_log.ProgressLog",  # as callbacks=default
        "+callbacks.progress_log.every_n_steps=3",
        "~logger",
        "test=true",  # 2 images per split
    ]
    result = run_train_cli(args, tmp_path)  # stdout and stderr are pipes, not a terminal
    assert result.returncode == 0, result.stderr[-3000:]
    (log_file,) = (tmp_path / "logs" / "train" / "runs").glob("*/train.log")
    for text in (result.stdout, log_file.read_text()):  # on the console and in the run's log
        lines = [
            line.split(" - ", 1)[-1] for line in text.splitlines() if "[p3m.callbacks.progress_log]" in line
        ]
        expected = [
            rf"epoch 1/2 done \| step 2/4 \| loss [\d.e+-]+ \| {RATE}",
            rf"epoch 2/2 \| step 3/4 \| loss [\d.e+-]+ \| {RATE}",  # every 3 steps
            rf"epoch 2/2 done \| step 4/4 \| loss [\d.e+-]+ \| {RATE}",
            rf"test P3M-500-P: batch 2/2 \| {RATE}",
            rf"test P3M-500-NP: batch 2/2 \| {RATE}",
        ]
        training_and_test = [line for line in lines if not line.startswith("validation")]
        assert len(training_and_test) == len(expected), lines
        for line, pattern in zip(training_and_test, expected, strict=True):
            assert re.fullmatch(pattern, line), line
        validation = rf"validation P3M-500-N?P: batch 1/1 \| {RATE}"
        assert sum(bool(re.fullmatch(validation, line)) for line in lines) == 4  # 2 splits, 2 epochs
