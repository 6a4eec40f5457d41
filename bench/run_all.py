"""Run the benchmark suite (``make bench``) and gather its tables in one markdown file and one JSON.

Every item measures ours and its baseline (our plain fp32, contiguous, eager implementation of the
official procedure) in the same run, interleaved, as the median of several repeats after warm-up,
and reports the ratio. Each item is its own script in bench/ (run alone for details) and its own
process (so one item's memory or threads do not leak into the next); a failing or timed-out item
is reported and the suite goes on.

    python bench/run_all.py [--full] [--only train_step onnx ...]

The default (``make bench``) times the ResNet-34 training step at 512x512 with the paper's batch of
8, the transformers' at 256x256 and HYBRID with three variants: about 8-9 minutes on an idle 2-core
CPU. ``--full`` runs every
backbone and variant at 512x512 (tens of minutes on 2 CPU cores).
Writes bench/results/summary.md and bench/results/summary.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

# name -> (script, default arguments, --full arguments, timeout in seconds)
ITEMS: dict[str, tuple[str, list[str], list[str], int]] = {
    "train_step": (
        "bench_train_step.py",
        ["--size", "512", "--batch", "8", "--runs", "2", "--backbones", "resnet34", "--variants", "fp32-cl",
         "bf16-cl"],
        ["--size", "512", "--runs", "3"],
        1800,
    ),
    "train_step_transformers": (
        "bench_train_step.py",
        ["--size", "256", "--runs", "3", "--backbones", "swin", "vitae", "--variants", "bf16-cl",
         "--out", str(RESULTS / "train_step_transformers.json")],
        ["--size", "512", "--runs", "3", "--backbones", "swin", "vitae",
         "--out", str(RESULTS / "train_step_transformers.json")],
        1800,
    ),
    "inference": ("bench_inference.py", ["--runs", "3"], ["--runs", "5"], 900),
    "onnx": ("bench_onnx.py", ["--size", "512", "--runs", "3"], ["--size", "512", "--runs", "5"], 600),
    "memory": ("bench_memory.py", ["--size", "256"], ["--size", "512", "--precision", "fp32", "bf16"], 1800),
    "data": ("bench_data.py", ["--rounds", "5"], [], 600),
    "metrics": ("bench_metrics.py", ["--runs", "3"], ["--runs", "5"], 600),
}  # fmt: skip


def machine() -> str:
    """CPU model, cores and load, for the header of the results."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{cpu}, {os.cpu_count()} cores, load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the training step at 512 px on every backbone")
    parser.add_argument("--only", nargs="+", choices=list(ITEMS), help="run only these items")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    header = machine()
    sections, summary = [f"# Benchmarks\n\nMachine: {header}\n"], {"machine": header, "items": {}}
    for name, (script, quick, full, timeout) in ITEMS.items():
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(REPO / "bench" / script), *(full if args.full else quick)]
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
            status, text = ("ok" if proc.returncode == 0 else f"failed ({proc.returncode})"), proc.stdout
            if proc.returncode:
                text += "\n" + proc.stderr[-2000:]
        except subprocess.TimeoutExpired:
            status, text = f"timed out after {timeout} s", ""
        seconds = time.perf_counter() - start
        print(text, flush=True)
        sections.append(f"## {name} ({status}, {seconds:.0f} s)\n\n{text.strip()}\n")
        summary["items"][name] = {"status": status, "seconds": seconds, "command": cmd[1:]}
        out = RESULTS / f"{name}.json"
        if out.is_file():
            summary["items"][name]["results"] = json.loads(out.read_text())
    summary["load_after"] = machine()
    (RESULTS / "summary.md").write_text("\n".join(sections))
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {RESULTS / 'summary.md'} and {RESULTS / 'summary.json'}")


if __name__ == "__main__":
    main()
