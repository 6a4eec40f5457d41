"""``last.ckpt``: the end of the newest training epoch, whatever the monitored metric does.

Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only when it saves a top-k
checkpoint (with a monitored metric: only when it improves), and with ``save_top_k=0`` only when
training ends; a second callback with ``save_last`` in the same folder writes ``last-v1.ckpt``. So
resuming from ``last.ckpt`` could roll a run back by several epochs. This callback alone owns
``last.ckpt`` and overwrites it at every training epoch end (after that epoch's validation); the
monitored checkpoint keeps ``save_last: false``. :class:`~src.callbacks.preemption.PreemptionCheckpoint`
writes the same file on SIGTERM.
"""

from __future__ import annotations

from pathlib import Path

from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

LAST_NAME = "last"


class LastCheckpoint(ModelCheckpoint):
    """Overwrite ``<dirpath>/last.ckpt`` at the end of every training epoch.

    Args:
        dirpath: The checkpoint folder (None: Lightning's default, ``<default_root_dir>/checkpoints``).
    """

    def __init__(self, dirpath: str | Path | None = None) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=LAST_NAME,
            monitor=None,  # no metric: keep the newest state
            save_top_k=1,  # one file, replaced at every save
            save_last=False,
            enable_version_counter=False,  # overwrite last.ckpt, never last-v1.ckpt
            save_on_train_epoch_end=True,  # every epoch, with or without validation in it
            auto_insert_metric_name=False,
        )
        self.last_path = ""
        """The file this run wrote (``""`` before the first save; a resumed run's old file is not it)."""

    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self.last_path = filepath


def find_last_checkpoint(trainer: Trainer) -> LastCheckpoint | None:
    """The trainer's :class:`LastCheckpoint`, if any (``trainer.checkpoint_callback`` is only the first)."""
    return next((cb for cb in trainer.callbacks if isinstance(cb, LastCheckpoint)), None)


def find_best_checkpoint(trainer: Trainer) -> ModelCheckpoint | None:
    """The trainer's first ModelCheckpoint that is not the :class:`LastCheckpoint` (the monitored one)."""
    return next((cb for cb in trainer.checkpoint_callbacks if not isinstance(cb, LastCheckpoint)), None)
