"""SIGTERM during a task: its temporary files are removed, and the exit is 143."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from omegaconf import DictConfig

from p3m.utils.errors import EXIT_TERMINATED
from p3m.utils.files import atomic_path
from p3m.utils.run import task_wrapper


def test_sigterm_mid_write_exits_143_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "clip_rgba.webm"

    def task(cfg: DictConfig) -> None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a video")
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's stop, mid-write
            tmp.write_bytes(b"the rest")  # never reached

    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as info:
        task_wrapper(task)(DictConfig({}))
    assert info.value.code == EXIT_TERMINATED
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary file
    assert signal.getsignal(signal.SIGTERM) == previous  # the process's handler is back


def test_training_leaves_sigterm_to_lightning() -> None:
    seen: list[object] = []
    task_wrapper(lambda cfg: seen.append(signal.getsignal(signal.SIGTERM)), saves_on_sigterm=True)(
        DictConfig({})
    )
    assert seen == [signal.getsignal(signal.SIGTERM)]  # no handler of ours during the task
