"""Find checkpoints in Hydra run directories: ``ckpt_path=latest`` and ``ckpt_path=latest:<task>``.

Every run has its own directory (``logs/<task>/runs/<time>/checkpoints``), so resuming or evaluating
"the newest run of an experiment" needs a lookup instead of a hand-copied path.

In a multirun the jobs of a sweep share a task, so "the newest run of the task" would hand one job
another job's checkpoint. There ``latest`` means the job's own: the newest run with the same
overrides (``.hydra/overrides.yaml``, ``ckpt_path`` aside), which is the job's own folder when a
pre-empted job is re-submitted (submitit requeues it with its sweep directory) and the same job of
an earlier sweep when the sweep is run again; a job with none yet starts afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from p3m.utils.checkpoint_files import CheckpointError, read_checkpoint

log = logging.getLogger(__name__)

LATEST = "latest"
LIGHTNING_LAST = "last"  # Lightning's word for "the last checkpoint of this trainer": a fresh one has none


def job_key(overrides: Iterable[str]) -> frozenset[str]:
    """What tells a multirun job from the others: its overrides but ``ckpt_path``."""
    return frozenset(str(o) for o in overrides if not str(o).lstrip("+~").startswith("ckpt_path="))


def multirun_job() -> list[str] | None:
    """The overrides of this multirun job (``hydra.overrides.task``); ``None`` outside a multirun."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return [str(o) for o in HydraConfig.get().overrides.task]


def _is_job(run_dir: Path, job: frozenset[str]) -> bool:
    """Whether the run in ``run_dir`` had the overrides ``job`` (Hydra's record of them)."""
    try:
        return job_key(OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")) == job
    except (OSError, ValueError, TypeError):  # no record, or not a list of overrides
        return False


def _candidates(
    log_dir: Path, task: str, prefer: Literal["best", "last"], job: frozenset[str] | None = None
) -> Iterator[Path]:
    """Every checkpoint of ``task`` (of ``job``'s runs only, if given): runs newest first; in each, the
    preferred kind first, newest first."""
    found = list(log_dir.glob(f"{task}/*runs/**/checkpoints/*.ckpt"))
    folders: dict[Path, float] = {}
    for path in found:
        if job is not None and not _is_job(path.parent.parent, job):
            continue
        folders[path.parent] = max(folders.get(path.parent, 0.0), path.stat().st_mtime)
    for folder in sorted(folders, key=folders.__getitem__, reverse=True):
        in_run = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
        last = [p for p in in_run if p.name.startswith("last")]
        best = [p for p in in_run if not p.name.startswith("last")]
        yield from (last + best) if prefer == "last" else (best + last)


def find_checkpoint(
    log_dir: Path, task: str, prefer: Literal["best", "last"], job: frozenset[str] | None = None
) -> Path | None:
    """The newest run of ``task`` that has a readable checkpoint: its ``last.ckpt`` or its best one.

    Files that do not load (truncated by a full disk, empty) are skipped with a warning naming them.
    With ``job`` (a multirun job's :func:`job_key`), only that job's runs count, and a job without any
    checkpoint gets ``None``.

    Raises:
        CheckpointError: no run of ``task`` under ``log_dir`` has a readable checkpoint (with ``job``:
            the job's checkpoints are all unreadable).
    """
    skipped = []
    for path in _candidates(log_dir, task, prefer, job):
        try:
            read_checkpoint(path, mmap=True)  # mapped, not read: checks the file is complete, cheaply
        except CheckpointError as err:
            log.warning("ckpt_path=%s: skipping %s", LATEST, err)
            skipped.append(path)
            continue
        if skipped:
            log.warning("ckpt_path=%s: using %s (%d newer file(s) do not load)", LATEST, path, len(skipped))
        return path
    if job is not None and not skipped:
        return None
    found = f"only unreadable ones ({', '.join(map(str, skipped))})" if skipped else "none"
    raise CheckpointError(
        f"ckpt_path={LATEST}: no readable checkpoint of {task!r} under {log_dir}/{task}/ ({found}): "
        f"train it first (p3m train task_name={task} ...) or pass ckpt_path=/path/to/file.ckpt"
    )


def resolve_ckpt_path(
    value: str | None,
    log_dir: str | Path,
    task: str,
    prefer: Literal["best", "last"],
    job: Iterable[str] | None = None,
) -> str | None:
    """Expand ``latest`` (newest run of ``task``) or ``latest:<other task>``; other values pass through.

    ``last`` (Lightning's word) means ``latest`` with ``last.ckpt`` preferred: given to Lightning it
    would restart from step 0, since a new run has no last checkpoint of its own. ``job``: the overrides
    of a multirun job (``hydra.overrides.task``): ``latest`` of its own task is then the job's own
    checkpoint, and ``None`` (start afresh) while it has none.
    """
    if value is not None and str(value) == LIGHTNING_LAST:
        log.info("ckpt_path=last: the newest run's last.ckpt (as ckpt_path=latest in training)")
        value, prefer = LATEST, "last"
    if not value or not str(value).startswith(LATEST):
        return value
    _, _, named = str(value).partition(":")
    if job is None or named:
        return str(find_checkpoint(Path(log_dir), named or task, prefer))
    found = find_checkpoint(Path(log_dir), task, prefer, job_key(job))
    if found is None:
        log.info("ckpt_path=%s: this multirun job has no checkpoint yet: it starts afresh", value)
        return None
    log.info("ckpt_path=%s: this multirun job's own checkpoint %s", value, found)
    return str(found)
