"""Save and restore every random number generator with the checkpoint, so a resumed run is exact.

Lightning's checkpoints hold the weights, optimizer, schedulers and loop progress but no RNG states:
a run resumed after epoch 1 would shuffle, crop and flip epoch 2 differently from an uninterrupted
run. This callback stores, per rank, the states of torch (CPU and every CUDA device), numpy's global
generator, Python's ``random`` and the generators held by the training dataset in the main process
(``num_workers=0``), and puts them back when the checkpoint is loaded.

DataLoader workers need nothing of their own: each epoch's workers are seeded from a base seed the
loader draws from torch's generator, which is restored. (Persistent workers keep their streams
across epochs in other processes: a run with ``data.persistent_workers=true`` resumes with fresh ones.)

When the states are applied matters:

- torch/numpy/Python at load time, before the sanity check (which Lightning runs inside
  ``isolate_rng``) and before the training loader draws its first epoch's seeds, as the
  uninterrupted run does right after the checkpoint was written;
- the dataset's generators at ``on_train_start``, when the training loader exists.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from lightning import Callback, LightningModule, Trainer

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


def capture_dataset_generators(dataset: Any) -> dict[str, dict[str, Any]]:
    """States of the ``numpy.random.Generator`` attributes of a dataset (created ones only)."""
    return {
        name: dict(value.bit_generator.state)
        for name, value in vars(dataset).items()
        if isinstance(value, np.random.Generator)
    }


def restore_dataset_generators(dataset: Any, states: dict[str, dict[str, Any]]) -> None:
    """Recreate the dataset's generators with the saved states (a lazily created one may still be None)."""
    for name, state in states.items():
        if not hasattr(dataset, name):
            log.warning("rng_state: the training dataset has no attribute %r any more; not restored", name)
            continue
        bit_generator = getattr(np.random, state["bit_generator"])()
        bit_generator.state = state
        setattr(dataset, name, np.random.Generator(bit_generator))


def _train_dataset(trainer: Trainer) -> Any | None:
    loader = trainer.train_dataloader
    return getattr(loader, "dataset", None)


class RNGStateCheckpoint(Callback):
    """Store every rank's RNG states in the checkpoint under ``rng_states`` and restore them on resume."""

    def __init__(self) -> None:
        self._pending_dataset_states: dict[str, dict[str, Any]] | None = None

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Add the states of every rank (gathered: only rank 0 writes the file)."""
        state = capture_global_rng()
        dataset = _train_dataset(trainer)
        state["dataset"] = capture_dataset_generators(dataset) if dataset is not None else {}
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, state)
            checkpoint[CHECKPOINT_KEY] = gathered
        else:
            checkpoint[CHECKPOINT_KEY] = [state]

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Restore this rank's global generators now; the dataset's at ``on_train_start``."""
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
        state = states[trainer.global_rank]
        restore_global_rng(state)
        self._pending_dataset_states = state.get("dataset") or None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Restore the training dataset's generators (it exists now)."""
        if self._pending_dataset_states:
            dataset = _train_dataset(trainer)
            if dataset is not None:
                restore_dataset_generators(dataset, self._pending_dataset_states)
        self._pending_dataset_states = None
