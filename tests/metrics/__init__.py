"""Tests of src/p3m/metrics, and a helper that runs a function in a group of CPU processes."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

needs_fork = pytest.mark.skipif(
    "fork" not in mp.get_all_start_methods(), reason="needs the fork start method"
)


def run_gloo_ranks(worker: Callable[..., None], world_size: int, *args: Any) -> None:
    """Run ``worker(rank, *args)`` in ``world_size`` processes joined in one gloo group (DDP on the CPU).

    Fork, not spawn: a spawned rank would spend ~5-10 s re-importing torch and torchmetrics. Safe here:
    CPU only (no CUDA context) and the ranks run single-threaded, so no OpenMP pool is inherited in use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(
        _rank, args=(worker, world_size, port, args), nprocs=world_size, join=True, start_method="fork"
    )


def _rank(rank: int, worker: Callable[..., None], world_size: int, port: int, args: tuple[Any, ...]) -> None:
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        worker(rank, *args)
    finally:
        dist.destroy_process_group()
