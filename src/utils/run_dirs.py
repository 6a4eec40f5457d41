"""Find checkpoints in Hydra run directories: ``ckpt_path=latest`` and ``ckpt_path=latest:<task>``.

Every run has its own directory (``logs/<task>/runs/<time>/checkpoints``), so resuming or evaluating
"the newest run of an experiment" needs a lookup instead of a hand-copied path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

LATEST = "latest"


def find_checkpoint(log_dir: Path, task: str, prefer: Literal["best", "last"]) -> Path:
    """The newest run of ``task`` that has checkpoints: its ``last.ckpt`` or its best checkpoint.

    Raises:
        FileNotFoundError: no run of ``task`` under ``log_dir`` has a checkpoint.
    """
    pattern = f"{task}/*runs/**/checkpoints/*.ckpt"
    found = sorted(log_dir.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"no checkpoint of {task!r} under {log_dir}/{task}/: train it first "
            f"(python src/train.py task_name={task} ...) or pass ckpt_path=/path/to/file.ckpt"
        )
    newest_dir = found[-1].parent
    in_run = sorted(newest_dir.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    last = [p for p in in_run if p.name.startswith("last")]
    best = [p for p in in_run if not p.name.startswith("last")]
    preferred, fallback = (last, best) if prefer == "last" else (best, last)
    return (preferred or fallback)[-1]


def resolve_ckpt_path(
    value: str | None, log_dir: str | Path, task: str, prefer: Literal["best", "last"]
) -> str | None:
    """Expand ``latest`` (newest run of ``task``) or ``latest:<other task>``; other values pass through."""
    if not value or not str(value).startswith(LATEST):
        return value
    _, _, named = str(value).partition(":")
    return str(find_checkpoint(Path(log_dir), named or task, prefer))
