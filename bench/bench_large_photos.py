"""Peak memory (RSS) of ``p3m predict`` on large photos: 6000x4000 and 10000x10000 JPEGs by default.

Each photo is predicted by the real command, ``python <src>/predict.py``, in a fresh process whose
peak resident set size comes from ``os.wait4`` (the kernel's high-water mark of that process and the
processes it waited for). ``--src`` points at the ``src/`` of another checkout to measure the code
before a change with the same photos and checkpoint, e.g. one made with ``git archive main``.

The photos are smooth random colour fields written as JPEG (quality 90, 4:2:0), made once into
``--work``, with a randomly initialised ResNet-34 P3M-Net checkpoint: memory does not depend on the
weights, and the network runs at ``max_short_side`` (1080) whatever the photo's size.

    python bench/bench_large_photos.py [--sizes 6000x4000 10000x10000] [--strategies hybrid] \
        [--src src] [--work /tmp/p3m_large_photos] [--threads 2]

Prints a markdown table and writes bench/results/large_photos.json.
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
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
MIB = 2**20


def make_photo(path: Path, height: int, width: int, seed: int = 0) -> None:
    """A smooth random colour field (a coarse noise grid upsampled) as a JPEG: decodes like a photo."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(2, height // 200), max(2, width // 200), 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90]):
        raise OSError(f"could not write {path}")


def make_checkpoint(path: Path) -> None:
    """A random ResNet-34 P3M-Net as our checkpoints hold it (in a subprocess: this one stays small)."""
    code = (
        "import sys, torch; from p3m.models import P3MNet; torch.manual_seed(0); "
        "s = P3MNet('resnet34').state_dict(); "
        "torch.save({'state_dict': {'net.' + k: v for k, v in s.items()}}, sys.argv[1])"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env)


def measure(src: Path, photo: Path, ckpt: Path, out: Path, strategy: str, threads: int) -> dict[str, Any]:
    """Run ``predict.py`` of ``src`` on ``photo``; its peak RSS, CPU and wall time."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(threads), "WANDB_MODE": "offline"}
    command = [
        sys.executable,
        str(src / "predict.py"),
        f"ckpt_path={ckpt}",
        f"input={photo}",
        f"output={out}",
        f"test_strategy={strategy}",
        "device=cpu",
        "overwrite=true",
        f"paths.log_dir={out / 'logs'}",
    ]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code != 0:  # -9: killed, e.g. by the kernel's out-of-memory killer
        raise RuntimeError(f"{' '.join(command)} failed (exit {code}):\n{stderr[-3000:]}")
    return {
        "peak_rss_mib": usage.ru_maxrss * 1024 / MIB,  # ru_maxrss is in KiB on Linux
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["6000x4000", "10000x10000"], help="WIDTHxHEIGHT")
    parser.add_argument("--strategies", nargs="+", default=["hybrid"])
    parser.add_argument(
        "--src", type=Path, default=REPO / "src", help="the src/ folder of the code to measure"
    )
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/p3m_large_photos"), help="photos and checkpoint"
    )
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the measured process")
    parser.add_argument("--label", default="", help="a name for this code in the table (before, after, ...)")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    ckpt = args.work / "random_r34.ckpt"
    if not ckpt.is_file():
        make_checkpoint(ckpt)
    rows = []
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        photo = args.work / f"photo_{width}x{height}.jpg"
        if not photo.is_file():
            make_photo(photo, height, width)
        for strategy in args.strategies:
            result = measure(args.src.resolve(), photo, ckpt, args.work / "out", strategy, args.threads)
            rows.append({"photo": f"{width}x{height}", "strategy": strategy, **result})
            print(f"{width}x{height} {strategy}: {result['peak_rss_mib']:.0f} MiB", file=sys.stderr)

    label = args.label or str(args.src)
    print("\n| code | photo | strategy | peak RSS (MiB) | CPU (s) | wall (s) |\n|---|---|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {label} | {row['photo']} | {row['strategy']} | {row['peak_rss_mib']:.0f} | "
            f"{row['cpu_s']:.1f} | {row['wall_s']:.1f} |"
        )
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    document = {
        "label": label,
        "src": str(args.src),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    (results / "large_photos.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
