"""``resize_mode=paper``: ms per 1080 px map of our device-resident resize against the NumPy one it
replaced and today's scikit-image with 0.14.5's settings, in one run (interleaved, median of runs).

    python bench/bench_resize.py [--runs 9] [--threads 1] [--device cpu]

The shapes are HYBRID's: a 512x800 half-size map resized to 1080x1620 (the official pass size of a
1080x1620 portrait), and the 1080x1620 photo (3 channels) shrunk to 512x800. The NumPy baseline is
the implementation this project used before (sample coordinates ``scale * (i + 0.5) - 0.5``, columns
then rows), kept here verbatim as a baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from skimage.transform import resize as sk_resize

from p3m.models.test_time.resize import resize_like_skimage_0_14


def numpy_baseline(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The previous NumPy rendering of 0.14.5's resize (before the fitted coordinates)."""

    def taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = (n_in / n_out) * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5
        low = np.floor(x)
        return low.astype(np.intp) + 1, np.ceil(x).astype(np.intp) + 1, x - low

    rows_low, rows_high, dr = taps(maps.shape[-2], size[0])
    cols_low, cols_high, dc = taps(maps.shape[-1], size[1])
    dr = dr[:, None]
    out = np.empty((maps.shape[0], *size), dtype=np.float64)
    for channel, plane in enumerate(maps):
        padded = np.pad(plane, 1)
        columns = (1 - dc) * padded.take(cols_low, axis=1) + dc * padded.take(cols_high, axis=1)
        out[channel] = (1 - dr) * columns.take(rows_low, axis=0) + dr * columns.take(rows_high, axis=0)
    lowest, highest = maps.min(), maps.max()
    zeros = out == 0 if (lowest > 0 or highest < 0) else None
    np.clip(out, lowest, highest, out=out)
    if zeros is not None:
        out[zeros] = 0.0
    return out


def _time(fn: Callable[[], object], device: torch.device) -> float:
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    cases = {
        "up 512x800 -> 1080x1620, 1 map": (rng.random((1, 512, 800)), (1080, 1620)),
        "down 1080x1620 -> 512x800, 3 maps": (rng.random((3, 1080, 1620)), (512, 800)),
    }
    results = {}
    for name, (maps, size) in cases.items():
        on_device = torch.from_numpy(maps).to(device)
        variants = {
            "ours (torch float64)": lambda m=on_device, s=size: resize_like_skimage_0_14(m, s),
            "previous NumPy": lambda m=maps, s=size: numpy_baseline(m, s),
            "skimage (0.14 settings)": lambda m=maps, s=size: sk_resize(
                m.transpose(1, 2, 0), s, order=1, mode="constant", anti_aliasing=False, preserve_range=True
            ),
        }
        times: dict[str, list[float]] = {v: [] for v in variants}
        for fn in variants.values():
            fn()  # warm-up (and the fit's cache)
        for _ in range(args.runs):
            for variant, fn in variants.items():
                times[variant].append(_time(fn, device))
        medians = {v: statistics.median(t) for v, t in times.items()}
        base = medians["previous NumPy"]
        results[name] = {
            v: {"ms": round(m, 2), "speed_up_vs_numpy": round(base / m, 2)} for v, m in medians.items()
        }
        for variant, row in results[name].items():
            print(f"{name:36s} {variant:26s} {row['ms']:8.2f} ms  {row['speed_up_vs_numpy']:.2f}x")
    print(json.dumps({"device": str(device), "threads": args.threads, "runs": args.runs, "results": results}))


if __name__ == "__main__":
    main()
