"""Training step (forward + paper loss + backward + Adam) per backbone, precision and memory layout.

Baseline: a plain fp32, contiguous, eager step of the same network on the same batch (the official
procedure's maths). Ours: channels-last and/or bf16 autocast (``trainer.precision=bf16-mixed``,
``model.channels_last=true``), losses in fp32 as in training. The variants run interleaved round by
round (so they share the machine's load), the median of ``--runs`` rounds after ``--warmup`` is
reported with its ratio to the baseline, and the bf16 loss is compared with the fp32 loss of the
same weights and batch.

    python bench/bench_train_step.py [--size 512] [--batch 2] [--runs 3] [--warmup 1] \
        [--backbones resnet34 swin vitae] [--variants fp32-cl bf16 bf16-cl]

Prints a markdown table and writes bench/results/train_step.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from src.models import P3MNet  # noqa: E402
from src.models.losses import P3MLoss  # noqa: E402

# name -> (channels_last, bf16 autocast)
VARIANTS: dict[str, tuple[bool, bool]] = {
    "fp32": (False, False),
    "fp32-cl": (True, False),
    "bf16": (False, True),
    "bf16-cl": (True, True),
}


def make_batch(batch: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A training batch with every key of the paper's loss."""
    gen = torch.Generator().manual_seed(seed)
    alpha = torch.rand(batch, 1, size, size, generator=gen)
    trimap = torch.full_like(alpha, 128.0)
    trimap[alpha < 0.3], trimap[alpha > 0.7] = 0.0, 255.0
    keys = ("image", "fg", "bg")
    return {"alpha": alpha, "trimap": trimap} | {
        k: torch.randn(batch, 3, size, size, generator=gen) for k in keys
    }


class Step:
    """One variant: its own copy of the network and optimiser."""

    def __init__(self, net: P3MNet, loss: P3MLoss, channels_last: bool, bf16: bool) -> None:
        self.net = copy.deepcopy(net).train()
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.loss, self.channels_last, self.bf16 = loss, channels_last, bf16
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=1e-5)

    def loss_value(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = batch["image"]
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            output = self.net(image)
        return self.loss(output, batch)["total"]

    def __call__(self, batch: dict[str, torch.Tensor]) -> float:
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_value(batch).backward()
        self.optimizer.step()
        return time.perf_counter() - start


def bench_backbone(name: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Time the baseline and each variant of ``args.variants`` for one backbone, interleaved."""
    torch.manual_seed(0)
    net, loss = P3MNet(name), P3MLoss()
    batch = make_batch(args.batch, args.size)
    steps = {v: Step(net, loss, *VARIANTS[v]) for v in ["fp32", *args.variants]}
    # loss of each variant from the same (initial) weights and batch, before any optimiser step
    with torch.no_grad():
        losses = {v: float(step.loss_value(batch)) for v, step in steps.items()}
    times: dict[str, list[float]] = {v: [] for v in steps}
    for round_ in range(args.warmup + args.runs):
        for variant, step in steps.items():
            seconds = step(batch)
            if round_ >= args.warmup:
                times[variant].append(seconds)
    base = statistics.median(times["fp32"])
    rows = {}
    for variant, runs in times.items():
        median = statistics.median(runs)
        rows[variant] = {
            "median_s": median,
            "images_per_s": args.batch / median,
            "speedup": base / median,
            "loss": losses[variant],
            "loss_rel_diff": abs(losses[variant] - losses["fp32"]) / abs(losses["fp32"]),
            "runs_s": runs,
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--backbones", nargs="+", default=["resnet34", "swin", "vitae"])
    parser.add_argument(
        "--variants", nargs="+", default=["fp32-cl", "bf16", "bf16-cl"], choices=list(VARIANTS)
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_step.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {name: bench_backbone(name, args) for name in args.backbones}
    meta = {
        "input": [args.batch, 3, args.size, args.size],
        "threads": torch.get_num_threads(),
        "runs": args.runs,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(
        f"Training step, batch {args.batch} at {args.size}x{args.size}, CPU, {meta['threads']} threads, "
        f"median of {args.runs} interleaved rounds after {args.warmup} warm-up\n"
    )
    print("| backbone | variant | median (s) | images/s | vs fp32 | loss rel. diff |")
    print("|---|---|---:|---:|---:|---:|")
    for name, rows in results.items():
        for variant, r in rows.items():
            print(
                f"| {name} | {variant} | {r['median_s']:.2f} | {r['images_per_s']:.2f} | "
                f"{r['speedup']:.2f}x | {r['loss_rel_diff']:.2%} |"
            )


if __name__ == "__main__":
    main()
