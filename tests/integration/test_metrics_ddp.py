"""Two CPU processes (gloo) give the same per-image means as one process seeing every image."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from p3m.metrics import matting_metrics
from tests.metrics import needs_fork, run_gloo_ranks
from tests.metrics.test_functional import random_mattes

WORLD_SIZE = 2
SHARDS = (slice(0, 3), slice(3, 5))  # uneven on purpose: 3 images on rank 0, 2 on rank 1


def _worker(rank: int, out_dir: str, data: tuple[torch.Tensor, ...]) -> None:
    """One DDP rank: update with its shard (in two batches), compute (which syncs), save the values."""
    pred, target, trimap = data
    index = list(range(5))[SHARDS[rank]]
    collection = matting_metrics()
    for batch in (index[:1], index[1:]):
        collection.update(pred[batch], target[batch], trimap[batch])
    values = {name: value.item() for name, value in collection.compute().items()}
    torch.save(values, Path(out_dir) / f"rank{rank}.pt")


@needs_fork
def test_two_process_sync_equals_single_process(tmp_path: Path) -> None:
    data = random_mattes(n=5, seed=7)
    run_gloo_ranks(_worker, WORLD_SIZE, str(tmp_path), data)
    single = matting_metrics()
    single.update(*data)
    expected = {name: value.item() for name, value in single.compute().items()}
    for rank in range(WORLD_SIZE):
        synced = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert synced.keys() == expected.keys()
        for name, value in expected.items():
            assert synced[name] == pytest.approx(value, rel=1e-12), (rank, name)
