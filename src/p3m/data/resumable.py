"""A training loader that can stop in the middle of an epoch and go on at the next batch.

Every epoch's data is a function of three numbers: the order seed, the epoch and the rank. The order
is each rank's share of one permutation drawn from ``(seed, epoch)`` (all ranks draw the same one, so
their shares never overlap), and the augmentation streams start from a seed drawn from ``(seed,
epoch, rank)``: the base seed of the DataLoader workers, or the dataset's own generators when it is
read in the main process (``num_workers=0``). A run resumed at an epoch boundary therefore needs no
data state at all.

Inside an epoch the position is state: which samples were handed out, and where each worker's
augmentation generators stand. torchdata's ``StatefulDataLoader`` keeps both (it snapshots every
worker's dataset state with each batch); :meth:`ResumableLoader.position` adds the seed, the epoch
and the batch count, from which :meth:`ResumableLoader.resume` restarts even with another number of
workers (the same samples in the same order, with other augmentations).

An epoch's iterator starts at its first batch, not at ``iter()``: Lightning calls ``iter()`` on the
training loader before it sets the sampler's epoch (at the first epoch, and at the first epoch after
a resume), and before any callback could hand back a saved position.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from torch import Generator
from torch.utils.data import Dataset
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler

log = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of one rank's augmentation streams in one epoch (63 bits: torch and numpy take it)."""
    words = np.random.SeedSequence([seed % 2**64, epoch, rank]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


class EpochSampler(StatefulDistributedSampler):
    """One rank's share of the training set, shuffled by ``(seed, epoch)``; its state holds the epoch.

    A ``DistributedSampler``, so Lightning keeps it under DDP instead of putting in its own, which
    would take its seed from ``PL_GLOBAL_SEED``: different on every rank of this project (train.py
    seeds each rank apart), so the ranks' shares would overlap. In one process it is a plain shuffle.
    """

    def state_dict(self) -> dict[str, Any]:
        """torchdata's position (samples handed out) and the epoch they belong to."""
        return {**super().state_dict(), "epoch": self.epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Go on in the saved epoch after the samples already handed out."""
        super().load_state_dict(state_dict)
        self.set_epoch(int(state_dict["epoch"]))


class _StartsAtFirstBatch(Iterator[Any]):
    """The iterator ``iter(loader)`` returns: it opens the epoch when asked for the first batch."""

    def __init__(self, loader: ResumableLoader) -> None:
        self.loader = loader
        self.epoch: Iterator[Any] | None = None

    def __next__(self) -> Any:
        if self.epoch is None:
            self.epoch = self.loader._open_epoch()
        batch = next(self.epoch)
        self.loader.batches_in_epoch += 1
        return batch


class ResumableLoader(StatefulDataLoader):
    """The training DataLoader: epochs drawn from ``(seed, epoch, rank)``, positions saved and restored.

    Args:
        dataset: the training set; its ``reseed(seed)`` (if any) restarts its generators, and its
            ``state_dict``/``load_state_dict`` carry their states through torchdata's snapshots.
        sampler: where the order comes from (an :class:`EpochSampler`; with another sampler, as
            Lightning's ``overfit_batches`` puts in, the loader is torchdata's plain one).
        **kwargs: the ``DataLoader`` arguments (``batch_size``, ``num_workers``, ...) but the
            generator, which this loader owns.
    """

    def __init__(self, dataset: Dataset, sampler: Any, **kwargs: Any) -> None:
        kwargs.pop("generator", None)  # Lightning passes it back when it rebuilds the loader
        with warnings.catch_warnings():  # torchdata 0.11 calls torch.set_vital, deprecated since
            warnings.filterwarnings("ignore", message=".*set_vital.*")
            super().__init__(dataset, sampler=sampler, generator=Generator(), **kwargs)
        self.batches_in_epoch = 0
        self._resumed: dict[str, Any] | None = None  # a position handed to resume(), not yet opened

    def __iter__(self) -> Iterator[Any]:
        return _StartsAtFirstBatch(self)

    def _open_epoch(self) -> Iterator[Any]:
        sampler = self.sampler
        if isinstance(sampler, EpochSampler):
            seed = epoch_seed(sampler.seed, sampler.epoch, sampler.rank)
            self.generator.manual_seed(seed)  # the workers' base seed: torch.initial_seed() in each
            if self.num_workers == 0 and hasattr(self.dataset, "reseed"):
                self.dataset.reseed(seed)  # a resumed position puts the saved states back right after
        self.batches_in_epoch = self._resumed["batches"] if self._resumed else 0
        self._resumed = None
        return StatefulDataLoader.__iter__(self)

    def state_dict(self) -> dict[str, Any]:
        """torchdata's state of the open epoch; ``{}`` before one is open (torchdata would open one)."""
        return super().state_dict() if self._iterator is not None else {}

    def position(self) -> dict[str, Any]:
        """Where the loader stands: order seed, epoch, batches handed out in it, workers, torchdata state."""
        if self._resumed is not None:  # restored but not reopened yet: the position is the one restored
            return dict(self._resumed)
        sampler = self.sampler
        return {
            "seed": getattr(sampler, "seed", None),
            "epoch": getattr(sampler, "epoch", 0),
            "batches": self.batches_in_epoch,
            "num_workers": self.num_workers,
            "loader": self.state_dict(),
        }

    def resume(self, position: Mapping[str, Any]) -> None:
        """Go on after the batches of ``position`` (from :meth:`position`) when the epoch next opens.

        With the same number of workers torchdata restores everything, the workers' augmentation
        generators included. With another number, its worker snapshots do not apply: the sampler
        skips the samples already handed out and the rest of the epoch gets fresh augmentations.
        """
        sampler = self.sampler
        if not isinstance(sampler, EpochSampler):
            name = type(sampler).__name__
            log.warning("data position: the training sampler is a %s: the epoch restarts", name)
            return
        if position.get("seed") is not None:
            sampler.seed = int(position["seed"])
        sampler.set_epoch(int(position["epoch"]))
        if position["num_workers"] == self.num_workers:
            self.load_state_dict(position["loader"])
        else:
            log.warning(
                "data position: the checkpoint was written with data.num_workers=%d, this run has %d: the "
                "rest of epoch %d gets the same samples in the same order but other random crops and flips",
                position["num_workers"],
                self.num_workers,
                position["epoch"],
            )
            self.load_state_dict({})
            sampler.load_state_dict(
                {"yielded": int(position["batches"]) * int(self.batch_size or 1), "epoch": position["epoch"]}
            )
        self._resumed = dict(position)
