"""Is batching video frames through the network faster? One frame at a time against a batch.

``p3m predict`` mattes a video ``video.batch_size`` frames at a time
(:func:`p3m.inference.matting.predict_mattes`). This script times HYBRID's mattes of ``--batch``
random frames, once as one batch and once one by one (``video.batch_size=1``), interleaved, the
median of ``--repeats``, with the largest difference between the two mattes.

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

from p3m.inference.matting import MattingSettings, predict_mattes  # noqa: E402
from p3m.models import P3MNet  # noqa: E402


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
    frames = list(torch.randint(0, 256, (args.batch, height, width, 3), dtype=torch.uint8).numpy())
    settings = MattingSettings(strategy="hybrid")
    predict_mattes(net, frames[:1], settings)  # warm-up
    single_times, batch_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        one_by_one = [predict_mattes(net, [frame], settings)[0] for frame in frames]
        single_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        batched = predict_mattes(net, frames, settings)
        batch_times.append(time.perf_counter() - start)
    differences = [abs(a - b) for a, b in zip(one_by_one, batched, strict=True)]
    difference = max(float(d.max()) for d in differences)
    mean_difference = sum(float(d.mean()) for d in differences) / len(differences)
    single, batch = statistics.median(single_times), statistics.median(batch_times)
    row = {
        "size": args.size,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "one_by_one_s_per_frame": single / args.batch,
        "batched_s_per_frame": batch / args.batch,
        "speedup": single / batch,
        "max_matte_difference": difference,
        "mean_matte_difference": mean_difference,
    }
    print(
        f"\n| frames | one by one (s/frame) | batch of {args.batch} (s/frame) | speed-up "
        "| max / mean difference |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {height}x{width} | {row['one_by_one_s_per_frame']:.3f} | {row['batched_s_per_frame']:.3f} | "
        f"{row['speedup']:.2f}x | {difference:.1e} / {mean_difference:.1e} |"
    )
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "video_batching.json").write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
