"""Training step (forward + paper loss + backward + Adam) per backbone, precision and memory layout.

Baseline: a plain fp32, contiguous, eager step of the same network on the same batch (the official
procedure's maths). Ours: channels-last and/or bf16 autocast (``trainer.precision=bf16-mixed``,
``model.channels_last=true``), losses in fp32 as in training. The variants run interleaved round by
round (so they share the machine's load), the median of ``--runs`` rounds after ``--warmup`` is
reported with its ratio to the baseline, and the bf16 loss is compared with the fp32 loss of the
same weights and batch. Our rows step the optimiser training builds (``conf/model/p3mnet.yaml``:
Adam, fused); the official rows the official script's (``torch.optim.Adam``, default kernels).

    python bench/bench_train_step.py [--size 512] [--batch 2] [--runs 3] [--warmup 1] \
        [--backbones resnet34 swin vitae] [--variants fp32-cl bf16 bf16-cl] [--official DIR] [--clock cpu]
    # on a GPU (bench/gpu_check.sh): strict fp32 vs TF32 vs bf16 + channels-last (+ compile)
    python bench/bench_train_step.py --device cuda --batch 8 --backbones resnet34 vitae --warmup 2 \
        --variants fp32-tf32 bf16-cl bf16-cl-compile --peak-tflops 989

The authors' model is a baseline too, when a checkout of their repository is found (``--official``,
default ``$P3M_OFFICIAL_REPO`` or ``../official/P3M``; ``git clone https://github.com/JizhiziLi/P3M``):
for ResNet-34 the rows ``official`` (fp32 contiguous) and ``official-bf16-cl`` run the official
``P3mNet`` built from that checkout at run time (bench/official_model.py; nothing is copied) with the
same weights, the same loss and batch, interleaved with ours, and the ``vs official`` column gives
each of our variants against the official run of the same precision and layout. Without a checkout
those rows are skipped with a note. ``--clock cpu`` times process CPU seconds instead of wall time
(steadier on a shared machine; all threads summed).

With ``--device cuda`` the table adds the achieved TFLOP/s (3x the forward FLOPs per image: 117
GFLOPs for ResNet-34 and 142 for ViTAE-S at 512x512), their fraction of ``--peak-tflops`` and the
peak memory of each variant (``torch.cuda.max_memory_allocated``).

Prints a markdown table and writes bench/results/train_step.json.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from bench.official_model import DEFAULT_OFFICIAL, matched_pair  # noqa: E402
from p3m.models import P3MNet  # noqa: E402
from p3m.models.losses import P3MLoss  # noqa: E402
from p3m.utils.allocator import keep_freed_memory  # noqa: E402


@dataclass(frozen=True)
class Variant:
    """How one variant runs the same step."""

    channels_last: bool = False
    bf16: bool = False
    tf32: bool = False  # CUDA only: TF32 matmuls and convolutions (the fp32 baseline has it off)
    compile: bool = False  # torch.compile of the network (its first rounds compile: use --warmup 2)


VARIANTS: dict[str, Variant] = {
    "fp32": Variant(),
    "fp32-tf32": Variant(tf32=True),
    "fp32-cl": Variant(channels_last=True),
    "bf16": Variant(bf16=True),
    "bf16-cl": Variant(channels_last=True, bf16=True),
    "bf16-cl-compile": Variant(channels_last=True, bf16=True, compile=True),
}
# The official model's rows: name -> our variant it runs as (and is compared with).
OFFICIAL_ROWS = {"official": "fp32", "official-bf16-cl": "bf16-cl"}
# Forward GFLOPs per 512x512 image (from the issue); a training step costs about three times that.
FORWARD_GFLOPS_512 = {"resnet34": 117.0, "vitae": 142.0}


# The official training script's optimiser; ours is the one training builds (conf/model/p3mnet.yaml).
OFFICIAL_OPTIMIZER = functools.partial(torch.optim.Adam, lr=1e-5)


def our_optimizer() -> Callable[..., torch.optim.Optimizer]:
    """The optimiser factory of ``conf/model/p3mnet.yaml`` (Adam, lr 1e-5, fused)."""
    return hydra.utils.instantiate(OmegaConf.load(REPO / "conf" / "model" / "p3mnet.yaml").optimizer)


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
    """One variant: its own copy of the network and optimiser, on ``device``."""

    def __init__(
        self,
        net: torch.nn.Module,
        loss: P3MLoss,
        variant: Variant,
        device: torch.device,
        clock: str = "wall",
        optimizer: Callable[..., torch.optim.Optimizer] = OFFICIAL_OPTIMIZER,
    ) -> None:
        self.net = copy.deepcopy(net).to(device).train()
        if variant.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if variant.compile:
            self.net.compile()
        self.loss, self.variant, self.device = loss.to(device), variant, device
        self.optimizer = optimizer(self.net.parameters())
        self.peak_bytes = 0
        self.clock = time.process_time if clock == "cpu" else time.perf_counter

    def loss_value(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        image = batch["image"]
        if self.variant.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.variant.bf16):
            output = self.net(image)
        return self.loss(output, batch)["total"]

    def __call__(self, batch: dict[str, torch.Tensor]) -> float:
        cuda = self.device.type == "cuda"
        if cuda:
            # the baseline is strict fp32: TF32 only where the variant asks for it
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.variant.tf32
            torch.cuda.reset_peak_memory_stats(self.device)
            torch.cuda.synchronize(self.device)
        start = self.clock()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_value(batch).backward()
        self.optimizer.step()
        if cuda:
            torch.cuda.synchronize(self.device)
            self.peak_bytes = max(self.peak_bytes, torch.cuda.max_memory_allocated(self.device))
        return self.clock() - start


def bench_backbone(name: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Time the baseline and each variant of ``args.variants`` for one backbone, interleaved."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    net, loss = P3MNet(name), P3MLoss()
    official = None
    if name == "resnet34":
        pair = matched_pair(args.official)
        if pair is None:
            print(f"no official checkout at {args.official} (core/network/P3mNet.py): official rows skipped")
        else:
            official, net = pair  # the same weights in both
    batch = {k: v.to(device) for k, v in make_batch(args.batch, args.size).items()}
    ours = ["fp32", *args.variants]
    steps = {v: Step(net, loss, VARIANTS[v], device, args.clock, our_optimizer()) for v in ours}
    if official is not None:
        for row, variant in OFFICIAL_ROWS.items():
            if variant in ours:
                steps[row] = Step(official, loss, VARIANTS[variant], device, args.clock)
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
    gflops = FORWARD_GFLOPS_512.get(name)
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
        official_row = {v: k for k, v in OFFICIAL_ROWS.items()}.get(variant)
        if official_row in times:
            rows[variant]["vs_official"] = statistics.median(times[official_row]) / median
        if gflops is not None:  # 3x the forward FLOPs per image, scaled from 512x512
            tflops = 3 * gflops * (args.size / 512) ** 2 * args.batch / median / 1000
            rows[variant]["tflops"] = tflops
            if args.peak_tflops:
                rows[variant]["fraction_of_peak"] = tflops / args.peak_tflops
        if device.type == "cuda":
            rows[variant]["peak_mib"] = steps[variant].peak_bytes / 2**20
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=0.0,
        help="the device's dense bf16 peak, for the fraction reached",
    )
    parser.add_argument("--backbones", nargs="+", default=["resnet34", "swin", "vitae"])
    parser.add_argument(
        "--variants", nargs="+", default=["fp32-cl", "bf16", "bf16-cl"], choices=list(VARIANTS)
    )
    parser.add_argument("--official", type=Path, default=DEFAULT_OFFICIAL, help="official P3M checkout")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall or process CPU time")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_step.json")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="glibc keeps freed memory for reuse, as train.py does (keep_freed_memory=true); every row",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = args.keep_freed_memory and keep_freed_memory()
    results = {name: bench_backbone(name, args) for name in args.backbones}
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    meta = {
        "input": [args.batch, 3, args.size, args.size],
        "device": where,
        "threads": torch.get_num_threads(),
        "runs": args.runs,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
        "peak_tflops": args.peak_tflops or None,
        "clock": args.clock,
        "keep_freed_memory": kept,
        "official": str(args.official)
        if any(OFFICIAL_ROWS.keys() & rows.keys() for rows in results.values())
        else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(
        f"Training step, batch {args.batch} at {args.size}x{args.size}, {where}, {meta['threads']} threads, "
        f"median of {args.runs} interleaved rounds after {args.warmup} warm-up, {args.clock} clock\n"
    )
    extra = [("vs_official", "vs official", "{:.2f}x")]
    extra += [("tflops", "TFLOP/s", "{:.1f}"), ("fraction_of_peak", "of bf16 peak", "{:.1%}")]
    extra += [("peak_mib", "peak MiB", "{:.0f}")]
    shown = [e for e in extra if any(e[0] in r for rows in results.values() for r in rows.values())]
    print(
        "| backbone | variant | median (s) | images/s | vs fp32 | loss rel. diff |"
        + "".join(f" {h} |" for _, h, _ in shown)
    )
    print("|---|---|---:|---:|---:|---:|" + "---:|" * len(shown))
    for name, rows in results.items():
        for variant, r in rows.items():
            cells = "".join(f" {fmt.format(r[key]) if key in r else ''} |" for key, _, fmt in shown)
            print(
                f"| {name} | {variant} | {r['median_s']:.2f} | {r['images_per_s']:.2f} | "
                f"{r['speedup']:.2f}x | {r['loss_rel_diff']:.2%} |{cells}"
            )


if __name__ == "__main__":
    main()
