"""``last.ckpt``: the end of the newest training epoch, whatever the monitored metric does.

Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only when it saves a top-k
checkpoint (with a monitored metric: only when it improves), and with ``save_top_k=0`` only when
training ends; a second callback with ``save_last`` in the same folder writes ``last-v1.ckpt``. So
resuming from ``last.ckpt`` could roll a run back by several epochs. This callback alone owns
``last.ckpt`` and overwrites it at every training epoch end (after that epoch's validation); the
monitored checkpoint keeps ``save_last: false``. :class:`~p3m.callbacks.preemption.PreemptionCheckpoint`
writes the same file on SIGTERM.
"""

from __future__ import annotations

from pathlib import Path

from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

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

    def _save_none_monitor_checkpoint(self, trainer: Trainer, monitor_candidates: dict[str, Tensor]) -> None:
        # Lightning's version records the file as `best_model_path`: loggers (W&B's `best` alias) and
        # ckpt_path="best" would then take the newest state for the best. Here it is the last one.
        filepath = self.format_checkpoint_name(monitor_candidates)
        self.last_model_path = filepath
        self._save_checkpoint(trainer, filepath)


def find_last_checkpoint(trainer: Trainer) -> LastCheckpoint | None:
    """The trainer's :class:`LastCheckpoint`, if any (``trainer.checkpoint_callback`` is only the first)."""
    callbacks = trainer.callbacks  # type: ignore[attr-defined]  # set by Lightning's connector
    return next((cb for cb in callbacks if isinstance(cb, LastCheckpoint)), None)


def find_best_checkpoint(trainer: Trainer) -> ModelCheckpoint | None:
    """The trainer's first ModelCheckpoint that is not the :class:`LastCheckpoint` (the monitored one)."""
    return next(
        (
            cb
            for cb in trainer.checkpoint_callbacks
            if isinstance(cb, ModelCheckpoint) and not isinstance(cb, LastCheckpoint)
        ),
        None,
    )
