"""Two CPU processes (gloo) give the same per-image means as one process seeing every image."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from src.metrics import matting_metrics
from tests.metrics.test_functional import random_mattes

WORLD_SIZE = 2
SHARDS = (slice(0, 3), slice(3, 5))  # uneven on purpose: 3 images on rank 0, 2 on rank 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str, data: tuple[torch.Tensor, ...]) -> None:
    """One DDP rank: update with its shard (in two batches), compute (which syncs), save the values."""
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        pred, target, trimap = data
        index = list(range(5))[SHARDS[rank]]
        collection = matting_metrics()
        for batch in (index[:1], index[1:]):
            collection.update(pred[batch], target[batch], trimap[batch])
        values = {name: value.item() for name, value in collection.compute().items()}
        torch.save(values, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs the fork start method")
def test_two_process_sync_equals_single_process(tmp_path: Path) -> None:
    data = random_mattes(n=5, seed=7)
    # fork, not spawn: a spawned rank would spend ~5-10 s re-importing torch and torchmetrics. Safe here:
    # CPU only (no CUDA context) and the ranks run single-threaded, so no OpenMP pool is inherited in use.
    mp.start_processes(
        _worker, args=(_free_port(), str(tmp_path), data), nprocs=WORLD_SIZE, join=True, start_method="fork"
    )
    single = matting_metrics()
    single.update(*data)
    expected = {name: value.item() for name, value in single.compute().items()}
    for rank in range(WORLD_SIZE):
        synced = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert synced.keys() == expected.keys()
        for name, value in expected.items():
            assert synced[name] == pytest.approx(value, rel=1e-12), (rank, name)
