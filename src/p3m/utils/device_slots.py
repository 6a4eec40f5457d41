"""Trials side by side, each on its own GPUs: a device slot per joblib worker of a sweep.

``hydra/launcher=parallel`` runs ``n_jobs`` trials at once, each in a joblib worker process, and all
of them would see every GPU (and train on GPU 0). :class:`DeviceSlots`, a Hydra callback of every
sweep (``conf/hydra/default.yaml``), splits the machine's GPUs (``CUDA_VISIBLE_DEVICES`` if set, else
all) into slots of ``trainer.devices`` GPUs (:func:`device_slots`); each worker takes a free slot on
its first trial and keeps it (CUDA reads ``CUDA_VISIBLE_DEVICES`` once per process), so no two
trials share a GPU while another is idle. More trials than slots wait their turn: ``n_jobs`` is
capped at the number of slots. A trial on several GPUs starts its other DDP ranks inside its slot
(:mod:`p3m.utils.trial_ranks`). Hydra's joblib launcher always uses processes (it sets joblib's
backend to loky whatever ``prefer`` says), so no thread ever shares a process with another trial.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from p3m.utils.distributed import devices_per_node

log = logging.getLogger(__name__)

SLOTS_FOLDER = ".device_slots"  # in the sweep's folder: one lock file per slot
# the slot this process holds for its lifetime: (index, slot, open lock file)
_held: tuple[int, list[str], int] | None = None


def device_slots(devices: Sequence[str], per_job: int) -> list[list[str]]:
    """Split GPU ids into slots of ``per_job`` consecutive ids; ids left over (fewer than a slot) stay idle.

    >>> device_slots(["0", "1", "2", "3"], 2)
    [['0', '1'], ['2', '3']]
    """
    per_job = max(1, per_job)
    return [list(devices[i : i + per_job]) for i in range(0, len(devices) - per_job + 1, per_job)]


def visible_gpus() -> list[str]:
    """This machine's GPU ids for the slots: ``CUDA_VISIBLE_DEVICES`` if set, else every GPU torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _uses_gpus(config: DictConfig) -> bool:
    trainer = config.get("trainer")
    return trainer is not None and str(trainer.get("accelerator", "auto")) in ("auto", "gpu", "cuda")


def _per_job(config: DictConfig) -> int:
    trainer = config.get("trainer")
    return devices_per_node(trainer.get("devices", 1)) if trainer is not None else 1


def _joblib(config: DictConfig) -> DictConfig | None:
    launcher = config.hydra.get("launcher")
    if launcher is not None and str(launcher.get("_target_", "")).endswith("JoblibLauncher"):
        return launcher
    return None


class DeviceSlots(Callback):
    """Give each joblib worker of a sweep its own GPUs (see the module's docstring)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Cap ``hydra.launcher.n_jobs`` at the number of slots (in the launching process, before launch)."""
        launcher = _joblib(config)
        if launcher is None or not _uses_gpus(config):
            return
        per_job = _per_job(config)
        slots = device_slots(visible_gpus(), per_job)
        if slots and launcher.n_jobs > len(slots):
            log.info(
                "hydra.launcher.n_jobs=%d capped at %d: %d GPU slot(s) of trainer.devices=%d; the other "
                "trials wait their turn",
                launcher.n_jobs,
                len(slots),
                len(slots),
                per_job,
            )
            with read_write(launcher), open_dict(launcher):
                launcher.n_jobs = len(slots)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """In a joblib worker: take a free slot (kept for the worker's life) and show only its GPUs."""
        global _held
        if _joblib(config) is None or not _uses_gpus(config):
            return
        if _held is None:
            slots = device_slots(visible_gpus(), _per_job(config))
            if not slots:  # no GPU: the trials run on the CPU
                return
            _held = _claim(Path(config.hydra.sweep.dir) / SLOTS_FOLDER, slots)
        index, slot, _ = _held
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(slot)
        log.info("device slot %d: CUDA_VISIBLE_DEVICES=%s", index, ",".join(slot))


def _claim(folder: Path, slots: list[list[str]], poll_s: float = 1.0) -> tuple[int, list[str], int]:
    """The first slot whose lock file no other process holds: (index, GPU ids, the held lock file).

    The lock is released when this process ends. With ``n_jobs`` capped at the number of slots a
    slot is free at once (a worker that replaces a dead one finds the dead one's slot free).
    """
    folder.mkdir(parents=True, exist_ok=True)
    waiting = False
    while True:
        for index, slot in enumerate(slots):
            lock = os.open(folder / f"{index}.lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                continue
            return index, slot, lock
        if not waiting:
            log.info("every GPU slot is taken; waiting for one")
            waiting = True
        time.sleep(poll_s)
