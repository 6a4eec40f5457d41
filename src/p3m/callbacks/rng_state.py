"""Save and restore the global random number generators with the checkpoint, so a resumed run is exact.

Lightning's checkpoints hold the weights, optimizer, schedulers and loop progress but no RNG states.
This callback stores, per rank, the states of torch (CPU and every CUDA device), numpy's global
generator and Python's ``random``, and puts them back when the checkpoint is loaded: before the
sanity check (which Lightning runs inside ``isolate_rng``) and before training goes on, as the
uninterrupted run does right after the checkpoint was written.

The training data's randomness is not here: the order and the augmentation streams of every epoch
come from ``(seed, epoch, rank)``, and the position inside an epoch (with each DataLoader worker's
generator states) is the data position's (:mod:`p3m.callbacks.data_position`).
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer

from p3m.utils.distributed import gather_from_ranks

log = logging.getLogger(__name__)

CHECKPOINT_KEY = "rng_states"


def capture_global_rng() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python generator states, in types ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }


def restore_global_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_global_rng` returned."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class RNGStateCheckpoint(Callback):
    """Store every rank's RNG states in the checkpoint under ``rng_states`` and restore them on resume."""

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Add the states of every rank (gathered: only rank 0 writes the file)."""
        checkpoint[CHECKPOINT_KEY] = gather_from_ranks(capture_global_rng())

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Restore this rank's generators."""
        states = checkpoint.get(CHECKPOINT_KEY)
        if not states:
            log.warning(
                "rng_state: the checkpoint has no RNG states (written without this callback): the resumed "
                "run continues with fresh random streams and will not repeat an uninterrupted run exactly"
            )
            return
        if len(states) != trainer.world_size:
            log.warning(
                "rng_state: the checkpoint holds the RNG states of %d processes but this run has %d: "
                "the random streams start afresh (exact resumption needs the same number of processes)",
                len(states),
                trainer.world_size,
            )
            return
        restore_global_rng(states[trainer.global_rank])
