"""What a run needs to know about its processes: per-rank seeds, worker counts, the effective batch size.

Lightning does the distributed work (``strategy: auto`` picks DDP as soon as a run asks for more than
one device, ``sync_batchnorm`` converts BatchNorm under DDP and is ignored on one device); these helpers
only size the parts Lightning leaves to the project.

The learning-rate rule: the paper trains with batch 8 on one GPU at lr 1e-5. The effective batch is
``data.batch_size x devices x num_nodes x accumulate_grad_batches``. Keep it at 8 (e.g. 4 GPUs x batch 2)
to keep the paper's lr, or scale the lr linearly with it (Goyal et al. 2017): 4 GPUs x batch 8 = 32 ->
lr 4e-5. :func:`scaled_lr` computes the linear rule; the train script logs both numbers at start.
"""

from __future__ import annotations

import os
from typing import Any

PAPER_BATCH_SIZE = 8
PAPER_LR = 1.0e-5


# where a launcher (torchrun, SLURM, LSF) puts the process's rank, in the order Lightning reads them
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def global_rank() -> int:
    """This process's global rank, as Lightning's ``rank_zero_only`` knows it, without importing
    Lightning (seconds): the rank a Trainer set, else the launcher's variables, else 0."""
    from lightning_utilities.core.rank_zero import rank_zero_only  # Lightning's own flag, a light import

    rank = getattr(rank_zero_only, "rank", None)
    if rank is not None:
        return int(rank)
    return next((int(os.environ[key]) for key in RANK_VARIABLES if key in os.environ), 0)


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, which SLURM and containers restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS has no affinity API
        return os.cpu_count() or 1


def devices_per_node(devices: Any) -> int:
    """How many processes a ``trainer.devices`` value starts on one node (``auto``/-1: every GPU, else 1)."""
    if isinstance(devices, (list, tuple)):
        return max(1, len(devices))
    if isinstance(devices, str):
        if devices.strip() in ("auto", "-1"):
            return _visible_gpus() or 1
        if "," in devices:  # "0,1,3": these GPU indices
            return len([d for d in devices.split(",") if d.strip()])
        devices = int(devices)
    if devices == -1:
        return _visible_gpus() or 1
    return max(1, int(devices))


def _visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def dataloader_workers(requested: int, processes_per_node: int, cpus: int | None = None) -> int:
    """Worker processes per DataLoader: ``requested``, capped so all ranks on a node fit its CPUs.

    Each rank keeps one CPU for its training process; the rest are shared among its workers. A
    machine with 16 CPUs and 4 GPUs gets at most 3 workers per loader and rank.
    """
    cpus = cpu_count() if cpus is None else cpus
    per_rank = max(1, cpus // max(1, processes_per_node))
    return max(0, min(int(requested), per_rank - 1))


def effective_batch_size(
    batch_size: int, devices: Any, num_nodes: int, accumulate_grad_batches: int = 1
) -> int:
    """Samples per optimisation step over all processes."""
    return int(batch_size) * devices_per_node(devices) * int(num_nodes) * int(accumulate_grad_batches)


def scaled_lr(effective_batch: int, base_lr: float = PAPER_LR, base_batch: int = PAPER_BATCH_SIZE) -> float:
    """The linear scaling rule: ``base_lr * effective_batch / base_batch`` (the paper: 1e-5 at batch 8)."""
    return base_lr * effective_batch / base_batch


def rank_seed(seed: int, global_rank: int) -> int:
    """Seed of one rank: ranks draw different augmentations and worker seeds, reproducibly."""
    return int(seed) + int(global_rank)


def gather_from_ranks(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order (a collective: every rank must call it); ``[value]`` alone.

    For per-rank state in a checkpoint, which only rank 0 writes.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered
