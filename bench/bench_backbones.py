"""Time P3M-Net's forward pass with every registered backbone on CPU.

Each backbone is built inside :class:`P3MNet` with random weights (eval mode, fp32, contiguous) and
run on one ImageNet-normalised image. After ``--warmup`` untimed passes (oneDNN builds its kernels
on the first one), the median of ``--runs`` timed passes is reported, with the fastest and slowest
run, so a busy machine shows up as spread rather than as a wrong median. One thread by default:
on a shared machine that is what stays comparable between runs.

    python bench/bench_backbones.py [--size 512] [--runs 5] [--warmup 1] [--threads 1] \
        [--backbones resnet34 swin vitae]

Writes a markdown table to stdout and JSON to bench/results/backbones.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.models import P3MNet  # noqa: E402
from p3m.models.components.backbones import list_backbones  # noqa: E402


def time_forward(net: P3MNet, image: torch.Tensor, runs: int, warmup: int) -> list[float]:
    """Seconds of each of ``runs`` forward passes, after ``warmup`` untimed ones."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            start = time.perf_counter()
            net(image)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="square input side (a multiple of 32)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5, help="timed forward passes per backbone")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes before timing")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--backbones", nargs="+", default=list_backbones(), choices=list_backbones())
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "backbones.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    image = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    results = {}
    for name in args.backbones:
        torch.manual_seed(0)
        net = P3MNet(name).float().eval()
        times = time_forward(net, image, args.runs, args.warmup)
        results[name] = {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "runs_s": times,
            "parameters": sum(p.numel() for p in net.parameters()),
        }
        del net

    meta = {
        "input": [args.batch, 3, args.size, args.size],
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "warmup": args.warmup,
        "runs": args.runs,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")

    print(
        f"P3M-Net forward, {args.batch}x3x{args.size}x{args.size}, CPU, {meta['threads']} threads, "
        f"median of {args.runs} runs after {args.warmup} warm-up (torch {torch.__version__})\n"
    )
    print("| backbone | parameters | median (s) | min (s) | max (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['parameters']:,} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} |")
    print(f"\nwritten to {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
