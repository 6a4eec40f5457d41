"""onnxruntime vs PyTorch (fp32, contiguous, eager) forward of P3M-Net(ResNet-34) on CPU.

Exports a random-init network with ``p3m.deploy.onnx_export`` (dynamic shapes), then times both
runtimes interleaved on the same input (median of ``--runs`` after ``--warmup``) and reports the
outputs' largest difference.

    python bench/bench_onnx.py [--size 512] [--runs 3] [--threads 0]

Prints a markdown table and writes bench/results/onnx.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.deploy.onnx_export import export_onnx  # noqa: E402
from p3m.inference.onnx_session import OnnxP3MNet  # noqa: E402
from p3m.models import P3MNet  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="threads of both runtimes (0: defaults)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "onnx.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = P3MNet("resnet34").eval()
    image = torch.randn(1, 3, args.size, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = export_onnx(net, Path(tmp) / "p3mnet.onnx", (min(args.size, 256), min(args.size, 256)))
        export_s = time.perf_counter() - start
        session = OnnxP3MNet(path, threads=args.threads)
        runners = {"pytorch": net, "onnxruntime": session}
        times: dict[str, list[float]] = {k: [] for k in runners}
        outputs = {}
        with torch.inference_mode():
            for round_ in range(args.warmup + args.runs):
                for name, run in runners.items():
                    start = time.perf_counter()
                    outputs[name] = run(image)
                    if round_ >= args.warmup:
                        times[name].append(time.perf_counter() - start)
    base = statistics.median(times["pytorch"])
    local_diff = float((outputs["onnxruntime"].local_alpha - outputs["pytorch"].local_alpha).abs().max())
    results = {
        name: {"median_s": statistics.median(t), "speedup": base / statistics.median(t), "runs_s": t}
        for name, t in times.items()
    }
    meta = {"input": [1, 3, args.size, args.size], "threads": torch.get_num_threads(), "export_s": export_s}
    meta |= {"local_alpha_max_abs_diff": local_diff, "runs": args.runs, "torch": torch.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"P3M-Net(ResNet-34) forward at {args.size}x{args.size}, CPU, export {export_s:.0f} s\n")
    print("| runtime | median (s) | vs PyTorch |")
    print("|---|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['median_s']:.3f} | {r['speedup']:.2f}x |")
    print(f"\nlocal alpha max |diff| {local_diff:.2e}")


if __name__ == "__main__":
    main()
