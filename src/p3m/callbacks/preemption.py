"""Save a resumable checkpoint when the run is terminated (SIGTERM), e.g. by a cluster pre-emption.

Lightning already catches SIGTERM: its handler forwards the signal to the DDP children, tells every
rank, and stops the fit loop after the current batch with ``SIGTERMException``. What it does not do
is write a checkpoint, so the work since the last validation would be lost. This callback writes one
from ``on_exception`` (all ranks are there together, so the collective checkpoint dump is safe).

The file is ``last.ckpt`` in the checkpoint folder (``ckpt_path=latest`` picks it up), holding the
mid-epoch loop state; the run resumes at the next batch, with the samples and augmentations the
uninterrupted run would have had next (:mod:`p3m.callbacks.data_position`). SLURM sends SIGTERM
shortly before SIGKILL (``KillWait``, 30 s by default): one batch and a checkpoint must fit in that
time; on SLURM, submitit's ``signal_delay_s`` gives warning earlier.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from p3m.callbacks.last_checkpoint import find_last_checkpoint

log = logging.getLogger(__name__)


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

    def _path(self, trainer: Trainer) -> Path:
        # the folder of last.ckpt's owner: trainer.checkpoint_callback is merely the first ModelCheckpoint
        owner = find_last_checkpoint(trainer) or trainer.checkpoint_callback
        if self.dirpath:
            folder = Path(self.dirpath)
        elif owner is not None and getattr(owner, "dirpath", None):
            folder = Path(owner.dirpath)
        else:
            folder = Path(trainer.default_root_dir) / "checkpoints"
        return folder / f"{self.filename}.ckpt"

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """Write the checkpoint if the run is being terminated while fitting (its validation included)."""
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        path = self._path(trainer)
        trainer.save_checkpoint(path)
        self.saved_path = path
        rank_zero_info(
            f"SIGTERM at epoch {trainer.current_epoch}, step {trainer.global_step}: saved {path}; "
            f"resume with ckpt_path={path} (or ckpt_path=latest)"
        )
