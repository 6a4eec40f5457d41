"""Progress as log lines, for runs whose output is not a terminal (SLURM, ``nohup``, CI).

The progress bar draws only on a terminal; a job's log file would otherwise show nothing between
the start and the end of a run. :class:`ProgressLog` writes one line every ``every_n_steps``
optimisation steps and one at each epoch end (epoch, step, mean loss, images/s over every rank,
time elapsed and left), and the same for evaluation (every ``every_n_steps`` batches of a split,
counted on rank 0, and at its end). The lines go to the run's log (rank 0 only).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from datetime import timedelta
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_only

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds))) if math.isfinite(seconds) else "?"


def _batch_size(batch: Any) -> int:
    image = batch.get("image") if isinstance(batch, dict) else None
    return int(image.shape[0]) if isinstance(image, torch.Tensor) else 1


class _Meter:
    """Images and time since a start and since the last line; the loss summed since the last line."""

    def __init__(self, done: int = 0) -> None:
        self.start = self.last = time.monotonic()
        self.start_done = done
        self.images = self.images_since_last = 0
        self.loss_sum: torch.Tensor | float = 0.0
        self.losses = 0

    def add(self, images: int, loss: torch.Tensor | None = None) -> None:
        self.images += images
        self.images_since_last += images
        if loss is not None:  # summed on the device: no synchronisation per step
            self.loss_sum = self.loss_sum + loss.detach()
            self.losses += 1

    def line(self, done: int, total: float) -> str:
        """``N images/s | elapsed | left``, then starts a new interval."""
        now = time.monotonic()
        rate = self.images_since_last / max(now - self.last, 1e-9)
        elapsed = now - self.start
        per_unit = elapsed / max(done - self.start_done, 1)
        left = per_unit * (total - done) if math.isfinite(total) and done > self.start_done else math.inf
        self.last, self.images_since_last = now, 0
        return f"{rate:.1f} images/s | elapsed {_duration(elapsed)} | left {_duration(left)}"

    def mean_loss(self) -> str:
        """The mean loss since the last call, then starts over."""
        if not self.losses:
            return "?"
        mean = float(self.loss_sum) / self.losses
        self.loss_sum, self.losses = 0.0, 0
        return f"{mean:.4g}"


class ProgressLog(Callback):
    """Log a progress line every ``every_n_steps`` steps and at every epoch end when stdout is no terminal.

    Args:
        every_n_steps: Training: optimisation steps between lines; evaluation: batches (one image each)
            of a split between lines.
        without_terminal_only: True: quiet when stdout is a terminal (the progress bar shows progress).
    """

    def __init__(self, every_n_steps: int = 50, without_terminal_only: bool = True) -> None:
        self.every_n_steps = max(1, int(every_n_steps))
        self.enabled = not (without_terminal_only and sys.stdout.isatty())
        self._train: _Meter | None = None
        self._eval: _Meter | None = None
        self._last_step = -1

    # ----------------------------------------------------------------------------- training
    @rank_zero_only
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the clock (a resumed run counts its steps from where it resumed)."""
        self._train = _Meter(done=trainer.global_step)
        self._last_step = trainer.global_step

    @rank_zero_only
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Count the batch's images on every rank and its loss; a line every ``every_n_steps`` steps."""
        if not self.enabled or self._train is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self._train.add(
            _batch_size(batch) * trainer.world_size, loss if isinstance(loss, torch.Tensor) else None
        )
        step = trainer.global_step
        epoch_ends = batch_idx + 1 == trainer.num_training_batches  # its line says the same: no twin
        if step != self._last_step and step % self.every_n_steps == 0 and not epoch_ends:
            self._last_step = step
            log.info(
                "%s | loss %s | %s", self._position(trainer), self._train.mean_loss(), self._line(trainer)
            )

    @rank_zero_only
    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """One line per epoch, whatever ``every_n_steps``."""
        if not self.enabled or self._train is None:
            return
        loss = self._train.mean_loss()
        log.info("%s | loss %s | %s", self._position(trainer, " done"), loss, self._line(trainer))

    def _position(self, trainer: Trainer, epoch_note: str = "") -> str:
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else "?"
        steps = _count(trainer.estimated_stepping_batches)
        return f"epoch {trainer.current_epoch + 1}/{epochs}{epoch_note} | step {trainer.global_step}/{steps}"

    def _line(self, trainer: Trainer) -> str:
        assert self._train is not None
        return self._train.line(trainer.global_step, float(trainer.estimated_stepping_batches))

    # ----------------------------------------------------------------------------- evaluation
    @rank_zero_only
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the evaluation clock (not for the sanity check)."""
        self._eval = None if trainer.sanity_checking else _Meter()

    @rank_zero_only
    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the evaluation clock."""
        self._eval = _Meter()

    @rank_zero_only
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """An evaluation line every ``every_n_steps`` images of a split."""
        self._eval_batch(trainer, batch, batch_idx, dataloader_idx, "validation", trainer.num_val_batches)

    @rank_zero_only
    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """A test line every ``every_n_steps`` images of a split."""
        self._eval_batch(trainer, batch, batch_idx, dataloader_idx, "test", trainer.num_test_batches)

    def _eval_batch(
        self, trainer: Trainer, batch: Any, batch_idx: int, dataloader_idx: int, stage: str, totals: list
    ) -> None:
        if not self.enabled or self._eval is None:
            return
        self._eval.add(_batch_size(batch) * trainer.world_size)
        done = sum(int(n) for n in totals[:dataloader_idx]) + batch_idx + 1
        total = float(sum(totals))
        split_total = totals[dataloader_idx]
        if (batch_idx + 1) % self.every_n_steps == 0 or batch_idx + 1 == split_total:
            name = _split_name(trainer, dataloader_idx)
            log.info(
                "%s %s: batch %d/%s | %s",
                stage,
                name,
                batch_idx + 1,
                _count(split_total),
                self._eval.line(done, total),
            )

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stop the evaluation clock."""
        self._eval = None

    @rank_zero_only
    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stop the evaluation clock."""
        self._eval = None


def _count(value: float) -> str:
    return str(int(value)) if math.isfinite(value) else "?"


def _split_name(trainer: Trainer, dataloader_idx: int) -> str:
    splits = getattr(getattr(trainer, "datamodule", None), "eval_splits", None)
    if splits and dataloader_idx < len(splits):
        return str(splits[dataloader_idx].name)
    return f"dataloader {dataloader_idx}"
