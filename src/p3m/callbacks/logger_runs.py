"""Record where this run logs, so that a run resumed from its checkpoint logs into the same places.

For every logger: its class and the values that name its run: the W&B run id (and display name),
the CSV and TensorBoard ``save_dir``/``name``/``version`` folders. The record goes into every
checkpoint under ``loggers`` and, when training starts, into ``<run dir>/loggers.json``, beside the
run's other files. ``train.py`` hands a resumed checkpoint's record to
:func:`p3m.utils.instantiate.instantiate_loggers`, which points each logger of the new run at it:
W&B resumes the run with that id (``resume="allow"``), CSV and TensorBoard append to the folder
instead of starting the next ``version_N``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import Logger, WandbLogger

from p3m.utils.files import write_bytes_atomic

CHECKPOINT_KEY = "loggers"
RECORD_FILE = "loggers.json"


def logger_record(logger: Logger) -> dict[str, Any]:
    """The class of ``logger`` and what names its run, in plain types (``weights_only`` loads them)."""
    cls = type(logger)
    record: dict[str, Any] = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "save_dir": logger.save_dir,
        "name": logger.name,
        "version": logger.version,
    }
    if isinstance(logger, WandbLogger):
        record["run_name"] = logger.experiment.name  # the display name, kept by the resumed run
    return record


class LoggerRunsCheckpoint(Callback):
    """Write the loggers' record into every checkpoint and into ``<run dir>/loggers.json``."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Store the record with the run (rank 0)."""
        if trainer.is_global_zero and trainer.loggers:
            records = [logger_record(logger) for logger in trainer.loggers]
            path = Path(trainer.default_root_dir) / RECORD_FILE
            path.parent.mkdir(parents=True, exist_ok=True)  # a resumed run may have logged nothing here yet
            write_bytes_atomic(path, json.dumps(records, indent=2).encode())

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Store the record in the checkpoint (rank 0's is the one written)."""
        if trainer.is_global_zero:
            checkpoint[CHECKPOINT_KEY] = [logger_record(logger) for logger in trainer.loggers]
