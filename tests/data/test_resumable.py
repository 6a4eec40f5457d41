"""The resumable training loader: epochs drawn from (seed, epoch, rank), positions saved and restored."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from p3m.data.datamodule import seed_worker
from p3m.data.resumable import EpochSampler, ResumableLoader


class Noisy(Dataset):
    """Items carry their index and a draw from the dataset's generator (a stand-in for an augmentation)."""

    def __init__(self, size: int = 12) -> None:
        self.size = size
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return self.size

    def reseed(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self._rng is None:
            self._rng = np.random.default_rng(torch.initial_seed())
        return {"index": index, "draw": float(self._rng.random())}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": None if self._rng is None else self._rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]


def _loader(workers: int, rank: int = 0, replicas: int = 1, seed: int = 7) -> ResumableLoader:
    data = Noisy()
    sampler = EpochSampler(data, num_replicas=replicas, rank=rank, seed=seed)
    return ResumableLoader(
        data, sampler, batch_size=2, drop_last=True, num_workers=workers, worker_init_fn=seed_worker
    )


def _epoch(loader: ResumableLoader, epoch: int) -> list[tuple[int, float]]:
    loader.sampler.set_epoch(epoch)
    return [
        (int(i), float(d)) for batch in loader for i, d in zip(batch["index"], batch["draw"], strict=True)
    ]


def _through_a_checkpoint(position: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(position, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("workers", [0, 2])
def test_every_epoch_is_a_function_of_seed_epoch_and_rank(workers: int) -> None:
    torch.manual_seed(0)  # the global generators play no part
    a = [_epoch(_loader(workers), epoch) for epoch in (0, 1)]
    torch.manual_seed(1)
    b = [_epoch(_loader(workers), epoch) for epoch in (1, 0)][::-1]  # another order of epochs, too
    assert a == b and a[0] != a[1]
    assert sorted(i for i, _ in a[0]) == list(range(12))
    # two ranks: disjoint shares of one permutation, other augmentation streams
    shares = [_epoch(_loader(workers, rank, replicas=2), 0) for rank in (0, 1)]
    assert sorted(i for share in shares for i, _ in share) == list(range(12))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_position_resumes_at_the_next_batch_with_the_same_draws(workers: int) -> None:
    straight = _epoch(_loader(workers), 1)

    stopped = _loader(workers)
    stopped.sampler.set_epoch(1)
    batches = iter(stopped)
    first = [next(batches) for _ in range(2)]
    position = _through_a_checkpoint(stopped.position())
    assert (position["epoch"], position["batches"], position["num_workers"]) == (1, 2, workers)

    resumed = _loader(workers, seed=99)  # the order seed comes from the position
    resumed.resume(position)
    assert resumed.position() == position  # not reopened yet: a checkpoint now saves the same
    rest = [
        (int(i), float(d)) for batch in resumed for i, d in zip(batch["index"], batch["draw"], strict=True)
    ]
    assert [
        (int(i), float(d)) for b in first for i, d in zip(b["index"], b["draw"], strict=True)
    ] + rest == straight
    assert resumed.batches_in_epoch == 6


def test_another_number_of_workers_resumes_the_order_not_the_draws() -> None:
    straight = _epoch(_loader(2), 0)
    stopped = _loader(2)
    batches = iter(stopped)
    next(batches)
    resumed = _loader(0)
    resumed.resume(_through_a_checkpoint(stopped.position()))
    rest = [
        (int(i), float(d)) for batch in resumed for i, d in zip(batch["index"], batch["draw"], strict=True)
    ]
    assert [i for i, _ in rest] == [i for i, _ in straight[2:]]
    assert all(a != b for (_, a), (_, b) in zip(rest, straight[2:], strict=True))
