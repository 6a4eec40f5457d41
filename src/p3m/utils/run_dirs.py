"""Find checkpoints in Hydra run directories: ``ckpt_path=latest`` and ``ckpt_path=latest:<task>``.

Every run has its own directory (``logs/<task>/runs/<time>/checkpoints``), so resuming or evaluating
"the newest run of an experiment" needs a lookup instead of a hand-copied path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from p3m.utils.checkpoint_files import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)

LATEST = "latest"
LIGHTNING_LAST = "last"  # Lightning's word for "the last checkpoint of this trainer": a fresh one has none


def _candidates(log_dir: Path, task: str, prefer: Literal["best", "last"]) -> Iterator[Path]:
    """Every checkpoint of ``task``: runs newest first; in each, the preferred kind first, newest first."""
    found = list(log_dir.glob(f"{task}/*runs/**/checkpoints/*.ckpt"))
    folders: dict[Path, float] = {}
    for path in found:
        folders[path.parent] = max(folders.get(path.parent, 0.0), path.stat().st_mtime)
    for folder in sorted(folders, key=folders.__getitem__, reverse=True):
        in_run = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
        last = [p for p in in_run if p.name.startswith("last")]
        best = [p for p in in_run if not p.name.startswith("last")]
        yield from (last + best) if prefer == "last" else (best + last)


def find_checkpoint(log_dir: Path, task: str, prefer: Literal["best", "last"]) -> Path:
    """The newest run of ``task`` that has a readable checkpoint: its ``last.ckpt`` or its best one.

    Files that do not load (truncated by a full disk, empty) are skipped with a warning naming them.

    Raises:
        CheckpointError: no run of ``task`` under ``log_dir`` has a readable checkpoint.
    """
    skipped = []
    for path in _candidates(log_dir, task, prefer):
        try:
            read_checkpoint(path, mmap=True)  # mapped, not read: checks the file is complete, cheaply
        except CheckpointError as err:
            log.warning("ckpt_path=%s: skipping %s", LATEST, err)
            skipped.append(path)
            continue
        if skipped:
            log.warning("ckpt_path=%s: using %s (%d newer file(s) do not load)", LATEST, path, len(skipped))
        return path
    found = f"only unreadable ones ({', '.join(map(str, skipped))})" if skipped else "none"
    raise CheckpointError(
        f"ckpt_path={LATEST}: no readable checkpoint of {task!r} under {log_dir}/{task}/ ({found}): "
        f"train it first (p3m train task_name={task} ...) or pass ckpt_path=/path/to/file.ckpt"
    )


def resolve_ckpt_path(
    value: str | None, log_dir: str | Path, task: str, prefer: Literal["best", "last"]
) -> str | None:
    """Expand ``latest`` (newest run of ``task``) or ``latest:<other task>``; other values pass through.

    ``last`` (Lightning's word) means ``latest`` with ``last.ckpt`` preferred: given to Lightning it
    would restart from step 0, since a new run has no last checkpoint of its own.
    """
    if value is not None and str(value) == LIGHTNING_LAST:
        log.info("ckpt_path=last: the newest run's last.ckpt (as ckpt_path=latest in training)")
        return str(find_checkpoint(Path(log_dir), task, "last"))
    if not value or not str(value).startswith(LATEST):
        return value
    _, _, named = str(value).partition(":")
    return str(find_checkpoint(Path(log_dir), named or task, prefer))
