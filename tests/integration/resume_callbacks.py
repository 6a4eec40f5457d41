"""Test-only callbacks for the resume tests: pre-empt a run at a chosen point, log the samples trained on.

Named in overrides (``+callbacks.stop._target_=tests.integration.resume_callbacks.SigtermAt``), so a
subprocess run (DDP, a multirun) can use them with the repository on its ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from lightning import Callback, LightningModule, Trainer


class SigtermAt(Callback):
    """Send this process SIGTERM, as a cluster pre-empting the job would, at one point of the fit.

    Args:
        epoch: The epoch.
        batch: The batch (of the training or validation loop) after which to stop.
        stage: ``train`` (while that training batch trains: the run stops after it), ``validation``
            (after that batch of the first evaluation split) or ``epoch_end`` (at the end of the epoch,
            after its checkpoint).
        job: In a multirun, stop only this job (``hydra.job.num``); ``None``: any run.
        rank: The rank that receives the signal (under DDP Lightning tells the others).
    """

    def __init__(
        self, epoch: int = 0, batch: int = 0, stage: str = "train", job: int | None = None, rank: int = 0
    ) -> None:
        self.epoch, self.batch, self.stage, self.job, self.rank = epoch, batch, stage, job, rank

    def _stop(self, trainer: Trainer, stage: str, batch: int = 0) -> None:
        if (stage, trainer.current_epoch, batch) != (self.stage, self.epoch, self.batch):
            return
        if trainer.sanity_checking or trainer.global_rank != self.rank or trainer.received_sigterm:
            return
        if self.job is not None and HydraConfig.get().job.num != self.job:
            return
        os.kill(os.getpid(), signal.SIGTERM)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """The signal arrives while training batch ``batch`` runs."""
        self._stop(trainer, "train", batch_idx)

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Stop after validation batch ``batch`` of the first split."""
        if dataloader_idx == 0:
            self._stop(trainer, "validation", batch_idx)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stop at the end of the epoch."""
        self._stop(trainer, "epoch_end")


class SampleLog(Callback):
    """Append every training batch's samples to ``<folder>/samples-rank<r>.jsonl``: their indices, and
    the sum of each augmented image (equal sums: the same crop, flip and colours)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """One line: epoch, batch, indices (``None`` where the batch has none) and image sums."""
        index = batch.get("index")
        row = {
            "epoch": trainer.current_epoch,
            "batch": batch_idx,
            "index": None if index is None else index.tolist(),
            "image_sum": batch["image"].double().flatten(1).sum(1).tolist(),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / f"samples-rank{trainer.global_rank}.jsonl").open("a") as file:
            file.write(json.dumps(row) + "\n")


def read_sample_log(folder: Path, rank: int = 0) -> dict[int, list[tuple[int | None, float]]]:
    """Per epoch, the samples a rank trained on, in order: (index, image sum) pairs."""
    epochs: dict[int, list[tuple[int | None, float]]] = {}
    for line in (folder / f"samples-rank{rank}.jsonl").read_text().splitlines():
        row = json.loads(line)
        index = row["index"] or [None] * len(row["image_sum"])
        epochs.setdefault(row["epoch"], []).extend(zip(index, row["image_sum"], strict=True))
    return epochs


def sample_ids(epochs: dict[int, list[tuple[int | None, float]]]) -> dict[int, list[int | None]]:
    """Only the indices of :func:`read_sample_log`'s pairs."""
    return {epoch: [index for index, _ in samples] for epoch, samples in epochs.items()}
