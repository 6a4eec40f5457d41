"""Would batching video frames through the network be faster? One frame at a time against a batch.

``p3m predict`` runs each frame of a video through P3M-Net on its own (a photo's test-time strategy,
one image per pass). This script times the network passes of HYBRID (the trimap pass at half size,
the matte pass at full size) for ``--batch`` frames, once as a batch and once one by one,
interleaved, the median of ``--repeats``, with the maximum difference between the two outputs.

    python bench/bench_video_batching.py [--size 288 512] [--batch 4] [--repeats 5] [--threads 0]

Prints a markdown table; writes bench/results/video_batching.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.models import P3MNet  # noqa: E402
from p3m.models.test_time import pass_size  # noqa: E402


@torch.no_grad()
def passes(net: P3MNet, half: torch.Tensor, full: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """HYBRID's two network passes on a batch: trimap logits at half size, the local matte at full size."""
    return net.segment(half), net.matte(full)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=[288, 512], help="frame (height, width)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = P3MNet("resnet34").eval()
    height, width = args.size
    half = torch.randn(args.batch, 3, *pass_size(height, width, 0.5))
    full = torch.randn(args.batch, 3, *pass_size(height, width, 1.0))
    passes(net, half[:1], full[:1])  # warm-up
    single_times, batch_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        one_by_one = [passes(net, half[i : i + 1], full[i : i + 1]) for i in range(args.batch)]
        single_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        batched = passes(net, half, full)
        batch_times.append(time.perf_counter() - start)
    difference = max(
        float((torch.cat([o[k] for o in one_by_one]) - batched[k]).abs().max()) for k in range(2)
    )
    single, batch = statistics.median(single_times), statistics.median(batch_times)
    row = {
        "size": args.size,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "one_by_one_s_per_frame": single / args.batch,
        "batched_s_per_frame": batch / args.batch,
        "speedup": single / batch,
        "max_output_difference": difference,
    }
    print(
        f"\n| frames | one by one (s/frame) | batch of {args.batch} (s/frame) | speed-up | max |difference| |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {height}x{width} | {row['one_by_one_s_per_frame']:.3f} | {row['batched_s_per_frame']:.3f} | "
        f"{row['speedup']:.2f}x | {difference:.1e} |"
    )
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "video_batching.json").write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
