"""Peak memory of ``p3m predict`` on a short and a long 1080p video: frames must stream, not pile up.

For each duration a 1920x1080 H.264 clip with an AAC tone is written once (a portrait of the sample
set drifting over a moving gradient, cached in bench/results/video_memory/), then predicted by
``src/predict.py`` in a fresh process whose peak resident set size (``ru_maxrss`` from ``wait4``:
the process and nothing else) is reported. Decoding, the network, the stabiliser and the encoders
all hold a bounded number of frames, so the long clip's peak should be within a few percent of the
short one's.

    python bench/bench_video_memory.py [--seconds 10 60] [--fps 5] [--size 1080 1920] [--ckpt PATH] \
        [--outputs mp4 webm] [--stabilizer flow_ema] [--max-short-side 256] [--resize-mode fast]

Without ``--ckpt`` a random-init ResNet-34 P3M-Net is saved and used (the weights do not change the
memory). The network runs on frames shrunk to ``--max-short-side`` (the mattes are resized back to
the clip's ``--size``, 1080p by default, with torch in ``--resize-mode fast``), so the bench spends
its time on the video path; 5 frames per second keep a 60 s clip to 300 frames on a 2-core CPU
(memory depends on the frame size, not on how many frames went by). Prints a markdown table and writes
bench/results/video_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.models import P3MNet  # noqa: E402

RESULTS = REPO / "bench" / "results"
SAMPLE = REPO / "tests/fixtures/p3m_samples/validation/P3M-500-NP/original_image/p_07141906.jpg"


def make_clip(path: Path, seconds: int, fps: int, size: tuple[int, int]) -> Path:
    """A (height, width) clip: the sample portrait drifting over a moving colour gradient, with a tone."""
    if path.is_file():
        return path
    height, width = size
    portrait = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    portrait = cv2.resize(portrait, (height, height))  # the square sample at full height
    xs = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=48000)
        for index in range(seconds * fps):
            phase = index / (seconds * fps)
            frame = (np.concatenate([xs, np.roll(xs, width // 3, 1), 1 - xs], axis=2) * 255).astype(np.uint8)
            frame = np.repeat(np.roll(frame, int(phase * width), axis=1), height, axis=0)
            x0 = int((width - height) * (0.5 + 0.4 * np.sin(2 * np.pi * phase)))
            frame[:, x0 : x0 + height] = portrait
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        samples = 48000 * seconds
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
        for start in range(0, samples, 48000):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 48000], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 48000, start, Fraction(1, 48000)
            container.mux(audio.encode(chunk))
        container.mux(audio.encode())
    tmp.rename(path)
    return path


def peak_rss_of(command: list[str]) -> tuple[int, float, str]:
    """Run ``command``; its peak RSS in KiB (wait4's ru_maxrss), wall seconds and output tail."""
    start = time.perf_counter()
    env = os.environ | {"PYTHONPATH": f"{REPO / 'src'}:{REPO}", "CUDA_VISIBLE_DEVICES": ""}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{output[-3000:]}")
    return usage.ru_maxrss, time.perf_counter() - start, output[-500:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, nargs="+", default=[10, 60])
    parser.add_argument("--fps", type=int, default=5)
    parser.add_argument("--size", type=int, nargs=2, default=[1080, 1920], help="height width")
    parser.add_argument("--ckpt", type=Path, default=None)
    parser.add_argument("--outputs", nargs="+", default=["mp4", "webm"])
    parser.add_argument("--stabilizer", default="flow_ema")
    parser.add_argument("--max-short-side", type=int, default=256)
    parser.add_argument("--resize-mode", default="fast", help="fast: torch resizing of the 1080p mattes")
    args = parser.parse_args()

    folder = RESULTS / "video_memory"
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = args.ckpt
    if ckpt is None:
        ckpt = folder / "random_r34.ckpt"
        torch.manual_seed(0)
        state = P3MNet("resnet34").state_dict()
        torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, ckpt)
    rows: list[dict[str, Any]] = []
    for seconds in args.seconds:
        height, width = args.size
        clip = make_clip(
            folder / f"clip_{seconds}s_{args.fps}fps_{height}p.mp4", seconds, args.fps, (height, width)
        )
        command = [
            sys.executable,
            "src/predict.py",
            f"ckpt_path={ckpt}",
            f"input={clip}",
            f"output={folder / 'out'}",
            f"video_output=[{','.join(args.outputs)}]",
            f"video.stabilizer={args.stabilizer}",
            "test_strategy=resize",
            f"resize_mode={args.resize_mode}",
            f"max_short_side={args.max_short_side}",
            "device=cpu",
            "overwrite=true",
            f"hydra.run.dir={folder / 'run'}",
        ]
        kib, wall, _ = peak_rss_of(command)
        frames = seconds * args.fps
        rows.append({"seconds": seconds, "frames": frames, "peak_rss_mib": kib / 1024, "wall_s": wall})
        print(f"{seconds} s ({frames} frames): peak RSS {kib / 1024:.0f} MiB, {wall:.0f} s", flush=True)
    base = rows[0]["peak_rss_mib"]
    size = f"{args.size[1]}x{args.size[0]}"
    print(f"\n| clip ({size}, {args.fps} fps) | frames | peak RSS (MiB) | vs first | wall (s) |")
    print("|---|---|---|---|---|")
    for row in rows:
        ratio = row["peak_rss_mib"] / base
        cells = [f"{row['seconds']} s", row["frames"], f"{row['peak_rss_mib']:.0f}", f"{ratio:.3f}"]
        print("| " + " | ".join(map(str, [*cells, f"{row['wall_s']:.0f}"])) + " |")
    document = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "av": av.__version__},
        "rows": rows,
    }
    (RESULTS / "video_memory.json").write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
