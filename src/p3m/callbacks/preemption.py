"""Save a resumable checkpoint when the run is terminated (SIGTERM), e.g. by a cluster pre-emption.

Lightning already catches SIGTERM: its handler forwards the signal to the DDP children, tells every
rank, and stops the fit loop after the current batch with ``SIGTERMException``. What it does not do
is write a checkpoint, so the work since the last validation would be lost. This callback writes one
from ``on_exception`` (all ranks are there together, so the collective checkpoint dump is safe).

A SIGTERM during the epoch's validation needs one correction. Lightning stops after a validation
batch is complete, and its loop state then reads as a checkpoint written after the validation: the
resumed run would skip the rest of it (the epoch's metrics, and what the best checkpoint is chosen
by, would never be logged). The checkpoint therefore records the validation as started and not
done, and the resumed run validates that epoch again from its first image (the metrics are not in
the checkpoint, so a part of a validation cannot be kept anyway).

Under DDP the ranks must stop at the same batch: the checkpoint is a collective (every rank adds its
random states and data position), and a rank that stops while another one trains on hangs both.
Lightning 2.6 decides per rank, from a flag its SIGTERM handler sets (and that handler itself runs
a broadcast whenever the signal lands); a rank that sees the signal one batch later than another,
or validates one image fewer, is then at another collective. So under DDP this callback takes
SIGTERM over when training starts: the handler only notes the signal (and passes it on to the
processes Lightning launched), and the ranks agree on it where they all are: at the end of every
training batch, of every validation and of every epoch. A SIGTERM during validation therefore takes
effect when the validation ends (the ranks validate different numbers of images).

The file is ``last.ckpt`` in the checkpoint folder (``ckpt_path=latest`` picks it up), holding the
mid-epoch loop state; the run resumes at the next batch, with the samples and augmentations the
uninterrupted run would have had next (:mod:`p3m.callbacks.data_position`). SLURM sends SIGTERM
shortly before SIGKILL (``KillWait``, 30 s by default): one batch and a checkpoint must fit in that
time; on SLURM, submitit's ``signal_delay_s`` gives warning earlier.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any, cast

import torch
import torch.distributed as dist
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loops.progress import _BatchProgress, _ProcessedTracker
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from p3m.callbacks.last_checkpoint import find_last_checkpoint

log = logging.getLogger(__name__)


def _validation_to_start_over(progress: _BatchProgress) -> None:
    """Make the validation loop's progress read "a batch started, none done" (Lightning's test for a
    checkpoint written mid-validation), with nothing done in this run of it: it restarts from scratch."""
    progress.reset()
    total = cast(_ProcessedTracker, progress.total)  # the tracker a batch progress is made with
    total.ready = total.started = 1


class PreemptionCheckpoint(Callback):
    """On SIGTERM, save the current training state to ``<dirpath>/<filename>.ckpt``.

    Args:
        dirpath: Folder of the checkpoint; ``None``: the folder of the
            :class:`~p3m.callbacks.last_checkpoint.LastCheckpoint` (else of the first ModelCheckpoint),
            else ``<default_root_dir>/checkpoints``.
        filename: File name without ``.ckpt``; ``last`` overwrites the LastCheckpoint's last.ckpt with
            the newer state, which is what resuming wants.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last") -> None:
        self.dirpath = dirpath
        self.filename = filename
        self.saved_path: Path | None = None
        self._signalled: bool | None = None  # under DDP: SIGTERM seen by this rank, not yet agreed on

    # -- DDP: every rank stops at the same batch --------------------------------------------------

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Under DDP, replace Lightning's SIGTERM handler (it restores the original at teardown)."""
        if trainer.world_size > 1 and threading.current_thread() is threading.main_thread():
            self._signalled = False
            signal.signal(signal.SIGTERM, functools.partial(self._note_sigterm, trainer))

    def _note_sigterm(self, trainer: Trainer, signum: int, frame: FrameType | None) -> None:
        # no logging here: the signal may interrupt a log call that holds the handler's lock
        launcher = trainer.strategy.launcher
        if not self._signalled and launcher is not None:
            launcher.kill(signum)  # the processes Lightning started (SLURM signals every rank itself)
        self._signalled = True

    def _agree(self, trainer: Trainer) -> None:
        """All ranks: if one saw SIGTERM, set Lightning's flag on every rank (it stops after the batch)."""
        if self._signalled is None:
            return
        seen = torch.tensor([int(self._signalled)], device=trainer.strategy.root_device)
        dist.all_reduce(seen, op=dist.ReduceOp.MAX)
        if seen.item() and not trainer.received_sigterm:
            rank_zero_info("SIGTERM: every rank stops after this step")
        # Lightning reads this flag at the end of a batch, a validation batch and an epoch
        trainer._signal_connector.received_sigterm = bool(seen.item())

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Agree after every training batch."""
        self._agree(trainer)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Under DDP, validate to the end: a rank with one image fewer would stop at another place."""
        if self._signalled is not None:
            self._signalled = self._signalled or trainer.received_sigterm
            trainer._signal_connector.received_sigterm = False

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Agree after the validation."""
        self._agree(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Agree at the end of the epoch."""
        self._agree(trainer)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Forget the signal: the next fit starts without one."""
        self._signalled = None

    # -- the checkpoint -------------------------------------------------------------------------------

    def _path(self, trainer: Trainer) -> Path:
        # the folder of last.ckpt's owner: trainer.checkpoint_callback is merely the first ModelCheckpoint
        owner = find_last_checkpoint(trainer) or trainer.checkpoint_callback
        if self.dirpath:
            folder = Path(self.dirpath)
        elif isinstance(owner, ModelCheckpoint) and owner.dirpath:
            folder = Path(owner.dirpath)
        else:
            folder = Path(trainer.default_root_dir) / "checkpoints"
        return folder / f"{self.filename}.ckpt"

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Write the checkpoint if the run is being terminated while fitting (its validation included)."""
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        if trainer.validating:
            _validation_to_start_over(trainer.fit_loop.epoch_loop.val_loop.batch_progress)
        path = self._path(trainer)
        trainer.save_checkpoint(path)
        self.saved_path = path
        rank_zero_info(
            f"SIGTERM at epoch {trainer.current_epoch}, step {trainer.global_step}: saved {path}; "
            f"resume with ckpt_path={path} (or ckpt_path=latest)"
        )
