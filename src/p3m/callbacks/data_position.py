"""Save where every rank's training data stands, and go on from there when the run resumes.

A checkpoint written in the middle of an epoch (on SIGTERM, by
:class:`~p3m.callbacks.preemption.PreemptionCheckpoint`) must resume at the next batch, with the
augmentations the interrupted run would have drawn; without this, the epoch starts over and its
first batches are trained twice while its last ones are never seen. The position is the training
loader's (:meth:`p3m.data.resumable.ResumableLoader.position`), gathered from every rank.

Lightning 2.6 also saves a stateful loader's state, but not in a way a resumed run can rely on:
it writes rank 0's state only (every rank would continue at rank 0's position), it restores it only
when the checkpoint was written mid-epoch, and not at all once ``trainer.estimated_stepping_batches``
was read before the restore (Lightning #20550; litData #775 is the same symptom); restored at the
end of an epoch it leaves the next epoch empty. So this callback removes Lightning's copy and is the
one owner of the position: it hands it to the loader at ``on_train_start``, which comes after the
loader exists on every path and before its first batch (the loader opens an epoch at its first
batch). A position at the end of an epoch restores nothing: the next epoch is drawn from
``(seed, epoch, rank)`` alone.
"""

from __future__ import annotations

import logging
from typing import Any

from lightning import Callback, LightningModule, Trainer

from p3m.data.resumable import ResumableLoader
from p3m.utils.distributed import gather_from_ranks

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "data_position"


def _training_loader(trainer: Trainer) -> ResumableLoader | None:
    loader = trainer.train_dataloader
    return loader if isinstance(loader, ResumableLoader) else None


def _drop_lightning_copy(checkpoint: dict[str, Any]) -> None:
    """Remove the loader state Lightning keeps in the fit loop's state (rank 0's only)."""
    fit_loop = checkpoint.get("loops", {}).get("fit_loop", {})
    fit_loop.get("state_dict", {}).pop("combined_loader", None)


class DataPositionCheckpoint(Callback):
    """Store every rank's training-data position under ``data_position``; resume the epoch there."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Add the position of every rank (a collective: every rank saves, rank 0 writes)."""
        loader = _training_loader(trainer)
        position = loader.position() if loader is not None else None
        if position is not None:
            # the batches Lightning counts for the epoch (limit_train_batches can end it early)
            position["epoch_done"] = position["batches"] >= trainer.num_training_batches
        checkpoint[CHECKPOINT_KEY] = gather_from_ranks(position)
        _drop_lightning_copy(checkpoint)

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Keep this rank's position for ``on_train_start``."""
        _drop_lightning_copy(checkpoint)
        positions = checkpoint.get(CHECKPOINT_KEY)
        if not positions:
            log.warning(
                "data position: the checkpoint has none (written without this callback): a resume in the "
                "middle of an epoch starts that epoch's data over"
            )
            return
        if len(positions) != trainer.world_size:
            log.warning(
                "data position: the checkpoint holds the positions of %d processes but this run has %d: the "
                "interrupted epoch's data starts over (the ranks' shares of it differ)",
                len(positions),
                trainer.world_size,
            )
            return
        position = positions[trainer.global_rank]
        self._pending = None if position is None or position["epoch_done"] else position

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Hand the saved position to the training loader (before its first batch)."""
        if self._pending is None:
            return
        loader = _training_loader(trainer)
        if loader is None:
            log.warning("data position: the training loader is not resumable: the epoch's data starts over")
        else:
            loader.resume(self._pending)
            epoch, batches = self._pending["epoch"], self._pending["batches"]
            log.info("data position: epoch %d goes on after batch %d", epoch, batches)
        self._pending = None
