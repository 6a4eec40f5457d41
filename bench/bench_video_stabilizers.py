"""The stabilisers on the video benchmark: flicker (dtSSD, MESSDdt) against accuracy (MAD) and speed.

The network mattes every frame of the benchmark once (timed, cached in bench/results/); then each
stabiliser runs on those mattes (timed) and :func:`p3m.inference.evaluate_video.evaluate_clips`
scores them, exactly as ``p3m eval mode=video video.stabilizer=<name>`` does (the ``none`` row is
that command's result). Frames per second count the network and the stabiliser, one frame at a time
on this machine's CPU.

    python bench/bench_video_stabilizers.py --ckpt PATH [--stabilizers none ema ofd flow_ema] \
        [--strategy hybrid] [--set ema_weight=0.7 ...] [--root data/video_benchmark]

Prints a markdown table (relative changes against ``none``) and writes
bench/results/video_stabilizers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.data.io import read_image  # noqa: E402
from p3m.data.video_benchmark import ensure_video_benchmark  # noqa: E402
from p3m.data.video_clips import Clip, find_clips  # noqa: E402
from p3m.inference.evaluate_video import evaluate_clips, network_predictor  # noqa: E402
from p3m.inference.matting import MattingSettings  # noqa: E402
from p3m.inference.stabilizers import StabilizerSettings  # noqa: E402
from p3m.models import load_model  # noqa: E402

RESULTS = REPO / "bench" / "results"
PORTRAITS = REPO / "tests/fixtures/p3m_samples/validation/P3M-500-NP"
METRICS = ["mad", "mse", "grad", "dtssd", "messddt"]


def cached_mattes(clips: list[Clip], ckpt: Path, strategy: str, cache: Path) -> tuple[dict[str, Any], float]:
    """Every frame's network matte (float16 to keep the cache small) and the network's seconds in all."""
    key = f"{ckpt.resolve()}:{ckpt.stat().st_mtime_ns}:{strategy}"
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["key"]) == key:
            names = [name for name in stored.files if name not in ("key", "seconds")]
            return {name: stored[name] for name in names}, float(stored["seconds"])
    net = load_model(ckpt).eval()
    predict = network_predictor(net, MattingSettings(strategy, "paper", None, "cpu"))
    mattes: dict[str, Any] = {}
    seconds = 0.0
    for clip in clips:
        frames = []
        for index, path in enumerate(clip.frames):
            image = read_image(path)
            start = time.perf_counter()
            frames.append(predict(clip, index, image).astype(np.float16))
            seconds += time.perf_counter() - start
        mattes[clip.name] = np.stack(frames)
        print(f"  {clip.name}: {len(frames)} frames, {seconds:.0f} s so far", flush=True)
    np.savez(cache, key=key, seconds=seconds, **mattes)
    return mattes, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=REPO / "data" / "video_benchmark")
    parser.add_argument("--stabilizers", nargs="+", default=["none", "ema", "ofd", "flow_ema"])
    parser.add_argument("--strategy", default="hybrid")
    parser.add_argument("--set", nargs="*", default=[], help="stabiliser settings, e.g. ema_weight=0.7")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    ensure_video_benchmark(args.root, portraits=PORTRAITS)  # the defaults of conf/eval.yaml
    clips = find_clips(args.root)
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"network mattes of {len(clips)} clips ({args.strategy}):", flush=True)
    mattes, network_seconds = cached_mattes(clips, args.ckpt, args.strategy, RESULTS / "video_mattes.npz")
    frames = sum(len(c.frames) for c in clips)
    overrides = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}

    def cached(clip: Clip, index: int, image: np.ndarray) -> np.ndarray:
        return mattes[clip.name][index].astype(np.float32)

    rows = []
    for name in args.stabilizers:
        settings = StabilizerSettings(stabilizer=name, **overrides)
        evaluation = evaluate_clips(clips, cached, settings, METRICS)
        seconds = network_seconds + evaluation.stabilize_seconds
        rows.append(
            {
                "stabilizer": name,
                **evaluation.result.mean,
                "stabilizer_ms_per_frame": 1000 * evaluation.stabilize_seconds / frames,
                "fps": frames / seconds,
                "per_clip": evaluation.result.per_image,
            }
        )
        print(f"{name}: {evaluation.result.mean}", flush=True)
    base = rows[0]
    print(f"\n{len(clips)} clips, {frames} frames, {args.strategy}; settings {overrides or 'defaults'}\n")
    print(
        "| stabilizer | MAD | MSE | Grad | dtSSD | MESSDdt | dtSSD vs none | MAD vs none | ms/frame | fps |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        change = {k: 100 * (row[k] / base[k] - 1) for k in ("dtssd", "mad")}
        print(
            f"| {row['stabilizer']} | {row['mad']:.5f} | {row['mse']:.5f} | {row['grad']:.3f} | "
            f"{row['dtssd']:.3f} | {row['messddt']:.3f} | "
            f"{change['dtssd']:+.1f} % | {change['mad']:+.1f} % | "
            f"{row['stabilizer_ms_per_frame']:.1f} | {row['fps']:.2f} |"
        )
    document = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "frames": frames,
        "network_seconds": network_seconds,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "threads": torch.get_num_threads(),
        },
        "rows": rows,
    }
    (RESULTS / "video_stabilizers.json").write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
