"""The video metrics under DDP: two CPU processes (gloo) give the mean over clips of one process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from p3m.metrics import matting_metrics
from tests.metrics import needs_fork, run_gloo_ranks
from tests.metrics.test_temporal import moving_blob_clip

NAMES = ["dtssd", "messddt"]
SHARDS = ((0, 1), (2,))  # uneven on purpose: two clips on rank 0, one on rank 1


def _worker(rank: int, out_dir: str, clips: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """One rank: one update per clip of its shard, compute (which syncs), save the values."""
    collection = matting_metrics(NAMES)
    for index in SHARDS[rank]:
        collection.update(*clips[index])
    torch.save({k: v.item() for k, v in collection.compute().items()}, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
@needs_fork
def test_two_process_sync_equals_single_process(tmp_path: Path) -> None:
    clips = [moving_blob_clip(frames=n, seed=n) for n in (3, 5, 4)]
    run_gloo_ranks(_worker, 2, str(tmp_path), clips)
    single = matting_metrics(NAMES)
    for clip in clips:
        single.update(*clip)
    expected = {k: v.item() for k, v in single.compute().items()}
    for rank in range(2):
        synced = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert synced == pytest.approx(expected, rel=1e-12)
