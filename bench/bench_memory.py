"""Peak memory of one training step (forward + paper loss + backward + Adam) per backbone and switch.

Each configuration runs in a fresh subprocess, so one configuration's peak (and its allocator's
cached blocks) cannot hide or inflate the next one's. In it: a random-init P3M-Net and Adam, whose
state is allocated before the measurement (as in every step after the first); then one step on a
synthetic batch with every key of ``P3MLoss`` (losses in fp32, as in training).

- CPU: the resident set size (RSS). The peak is the kernel's high-water mark ``VmHWM``, reset just
  before the step through ``/proc/self/clear_refs`` (else ``ru_maxrss``, the process's lifetime peak:
  still the step's peak since nothing before it is as large); reported as the absolute peak and as
  the increase over the RSS after building the network and its optimiser state.
- CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, absolute and over
  the memory allocated before the step (the caching allocator's reserved peak is in the JSON).

Configurations: every backbone in fp32 (and bf16 autocast with ``--precision fp32 bf16``); the
transformer backbones also with activation checkpointing (``model.activation_checkpointing=true``),
whose saving over the same backbone and precision without it is printed as a ratio.

    python bench/bench_memory.py [--size 512] [--batch 2] [--backbones resnet34 swin vitae] \
        [--precision fp32 [bf16]] [--device auto|cpu|cuda] [--threads 0]

Prints a markdown table and writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from bench.bench_train_step import make_batch  # noqa: E402
from p3m.models import P3MNet  # noqa: E402
from p3m.models.losses import P3MLoss  # noqa: E402
from p3m.models.performance import enable_activation_checkpointing  # noqa: E402

# Backbones built of transformer blocks, the ones activation checkpointing applies to.
CHECKPOINTABLE = ("swin", "vitae")
MIB = 2**20


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark of this process (Linux >= 4.0); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_bytes() -> int:
    """The current resident set size."""
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import psutil  # only off Linux; an optional dependency

    return psutil.Process().memory_info().rss


def _peak_rss_bytes(reset: bool) -> int:
    """The RSS peak since the reset, or the process's lifetime peak (``ru_maxrss``) without one."""
    kib = _status_kib("VmHWM") if reset else None
    if kib is None:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return maxrss if sys.platform == "darwin" else maxrss * 1024  # bytes on macOS, KiB on Linux
    return kib * 1024


def measure_step(
    backbone: str,
    size: int,
    batch: int,
    precision: str = "fp32",
    checkpointing: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Build the network and optimiser, then measure one training step's peak memory.

    Run it in a process of its own for a clean CPU number (``main`` does): the RSS also holds whatever
    the process allocated before.

    Args:
        backbone: A registered backbone name.
        size: Height and width of the batch (a multiple of 32).
        batch: Batch size.
        precision: ``fp32`` or ``bf16`` (autocast around the network; the loss stays fp32).
        checkpointing: Recompute the transformer blocks' activations in the backward pass.
        device: ``cpu`` or ``cuda``.

    Returns:
        ``peak_mib`` (absolute), ``increase_mib`` (over the memory before the step), ``before_mib``,
        ``step_s``, ``loss``, ``checkpointed_blocks`` and, on CUDA, ``reserved_peak_mib``.
    """
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r} (set --precision)")
    torch.manual_seed(0)
    dev = torch.device(device)
    net = P3MNet(backbone).to(dev).train()
    blocks = enable_activation_checkpointing(net) if checkpointing else 0
    loss_fn = P3MLoss()
    data = {k: v.to(dev) for k, v in make_batch(batch, size).items()}
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-5)
    # Allocate Adam's moments now (zero gradients: an update of exactly zero), so the measured step is
    # a steady-state one whose peak holds them, as every step after the first does.
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
    else:
        before = _rss_bytes()
        reset = _reset_peak_rss()
    start = time.perf_counter()
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        output = net(data["image"])
    loss = loss_fn(output, data)["total"]
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {"step_s": seconds, "loss": loss.item(), "checkpointed_blocks": blocks}
    if cuda:
        peak = torch.cuda.max_memory_allocated(dev)
        result["reserved_peak_mib"] = torch.cuda.max_memory_reserved(dev) / MIB
    else:
        peak = max(_peak_rss_bytes(reset), before)
        result["peak_source"] = "VmHWM" if reset else "ru_maxrss"
    result |= {"peak_mib": peak / MIB, "increase_mib": (peak - before) / MIB, "before_mib": before / MIB}
    return result


def configurations(backbones: list[str], precisions: list[str]) -> list[dict[str, Any]]:
    """Every backbone at every precision, and the transformers also with activation checkpointing."""
    configs = []
    for backbone in backbones:
        for precision in precisions:
            for checkpointing in (False, True) if backbone in CHECKPOINTABLE else (False,):
                configs.append({"backbone": backbone, "precision": precision, "checkpointing": checkpointing})
    return configs


def run_isolated(config: dict[str, Any], args: argparse.Namespace, device: str) -> dict[str, Any]:
    """``measure_step`` in a fresh Python process; its result comes back as the last stdout line."""
    job = config | {"size": args.size, "batch": args.batch, "device": device}
    cmd = [sys.executable, __file__, "--worker", json.dumps(job), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode:
        raise RuntimeError(f"{job} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux) and its core count."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, or n/a."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--backbones", nargs="+", default=["resnet34", "swin", "vitae"])
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per configuration")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "memory.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one configuration, as JSON (internal)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure_step(**json.loads(args.worker))))
        return

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    load_before = load_average()
    results = []
    for config in configurations(args.backbones, args.precision):
        print(f"measuring {config}", file=sys.stderr, flush=True)
        results.append(config | run_isolated(config, args, device))
    # activation checkpointing's saving: the step's increase without it over the increase with it
    plain = {(r["backbone"], r["precision"]): r for r in results if not r["checkpointing"]}
    for r in results:
        if r["checkpointing"]:
            base = plain[(r["backbone"], r["precision"])]
            r["increase_vs_plain"] = r["increase_mib"] / base["increase_mib"]
            r["peak_vs_plain"] = r["peak_mib"] / base["peak_mib"]
    meta = {
        "input": [args.batch, 3, args.size, args.size],
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "measure": "torch.cuda.max_memory_allocated" if device == "cuda" else "process RSS (VmHWM)",
        "threads": args.threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": f"{cpu_model()}; {platform.platform()}",
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")

    what = "CUDA max allocated" if device == "cuda" else "CPU RSS"
    print(
        f"Peak memory of one training step (forward + P3MLoss + backward + Adam), batch {args.batch} at "
        f"{args.size}x{args.size}, {what} ({meta['device']}), one fresh process per row, "
        f"{meta['threads']} threads, {cpu_model()}, load average {load_before}\n"
    )
    print(
        "| backbone | precision | activation ckpt | peak (MiB) | increase (MiB) | peak vs no ckpt "
        "| increase vs no ckpt | step (s) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        ckpt = r["checkpointing"]
        ratios = f"{r['peak_vs_plain']:.2f}x | {r['increase_vs_plain']:.2f}x" if ckpt else " | "
        print(
            f"| {r['backbone']} | {r['precision']} | {'on' if ckpt else 'off'} | {r['peak_mib']:.0f} | "
            f"{r['increase_mib']:.0f} | {ratios} | {r['step_s']:.1f} |"
        )
    print("\nincrease: over the memory after building the network and Adam's state; step (s): one step")
    for r in results:
        if r["checkpointing"] and r["increase_vs_plain"] >= 1:
            name = f"{r['backbone']} {r['precision']}"
            print(f"\nWARNING: activation checkpointing did not lower the step's memory of {name}")


if __name__ == "__main__":
    main()
