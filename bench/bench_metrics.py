"""Time our matting metrics against plain numpy/scipy implementations of the official definitions.

Two baselines, both written here from the definitions in the official ``evaluate.py`` (not copied):

* ``official``: the official steps, including Conn's ``skimage.measure.regionprops`` to find the
  largest component and the per-threshold distance transform the official code computes and never
  uses. This is what the published numbers cost.
* ``lean``: the same definitions with ``scipy.ndimage.label`` + ``bincount`` and no distance
  transform: what a careful numpy port costs.

Ours are the functions of ``p3m.metrics.functional`` on torch tensors, and the full
``matting_metrics()`` collection (update + compute). Inputs are float64 (png / 255, as the official
evaluation), on one CPU thread by default. Every row reports the median of ``--runs`` runs and the
largest relative difference between our value and the baselines'.

    python bench/bench_metrics.py [--runs 5] [--threads 1] [--device cpu]

Writes a markdown table to stdout and JSON to bench/results/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.metrics import functional as ours  # noqa: E402
from p3m.metrics import matting_metrics  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
SAMPLE = ("P3M-500-P", "p_51c916fc")  # a 1080x1618 portrait with an imperfect prediction
THRESHOLDS = np.arange(0.0, 1.1, 0.1)


# ------------------------------------------------------------------------------ baseline (numpy)
def base_sad(pd: np.ndarray, gt: np.ndarray) -> float:
    return float(np.abs(pd - gt).sum() / 1000)


def base_mse(pd: np.ndarray, gt: np.ndarray) -> float:
    return float(((pd - gt) ** 2).sum() / pd.size)


def base_mad(pd: np.ndarray, gt: np.ndarray) -> float:
    return float(np.abs(pd - gt).sum() / pd.size)


def _forced(pd: np.ndarray, tri: np.ndarray) -> np.ndarray:
    out = pd.copy()
    out[tri == 255] = 1.0
    out[tri == 0] = 0.0
    return out


def base_sad_t(pd: np.ndarray, gt: np.ndarray, tri: np.ndarray) -> float:
    return float(np.abs(_forced(pd, tri) - gt).sum() / 1000)


def base_mse_t(pd: np.ndarray, gt: np.ndarray, tri: np.ndarray) -> float:
    return float(((_forced(pd, tri) - gt) ** 2).sum() / (tri == 128).sum())


def base_mad_t(pd: np.ndarray, gt: np.ndarray, tri: np.ndarray) -> float:
    return float(np.abs(_forced(pd, tri) - gt).sum() / (tri == 128).sum())


def base_sad_fg(pd: np.ndarray, gt: np.ndarray, tri: np.ndarray) -> float:
    return float((np.abs(pd - gt) * (tri == 255)).sum() / 1000)


def base_sad_bg(pd: np.ndarray, gt: np.ndarray, tri: np.ndarray) -> float:
    return float((np.abs(pd - gt) * (tri == 0)).sum() / 1000)


def base_grad(pd: np.ndarray, gt: np.ndarray) -> float:
    def magnitude(x: np.ndarray) -> np.ndarray:
        dy = ndimage.gaussian_filter(x, 1.4, order=(1, 0), output=np.float32)
        dx = ndimage.gaussian_filter(x, 1.4, order=(0, 1), output=np.float32)
        return np.sqrt(dy**2 + dx**2)

    return float(np.sum((magnitude(pd) - magnitude(gt)) ** 2) / 10)


def _conn_from_lmap(pd: np.ndarray, gt: np.ndarray, l_map: np.ndarray) -> float:
    d_pd, d_gt = pd - l_map, gt - l_map
    phi_pd = 1 - d_pd * (d_pd >= 0.15)
    phi_gt = 1 - d_gt * (d_gt >= 0.15)
    return float(np.abs(phi_pd - phi_gt).sum() / 1000)


def base_conn_official(pd: np.ndarray, gt: np.ndarray) -> float:
    """The official steps: skimage labels + regionprops, plus the unused distance transform."""
    from skimage.measure import label, regionprops

    l_map = np.full(pd.shape, -1.0, dtype=np.float32)
    for i in range(1, THRESHOLDS.size):
        regions = regionprops(label((pd >= THRESHOLDS[i]) & (gt >= THRESHOLDS[i]), connectivity=1))
        if not regions:
            continue
        largest = regions[int(np.argmax([r.area for r in regions]))].coords
        omega = np.zeros(pd.shape, dtype=np.float32)
        omega[largest[:, 0], largest[:, 1]] = 1
        l_map[(l_map == -1) & (omega == 0)] = THRESHOLDS[i - 1]
        distance = ndimage.distance_transform_edt(omega == 0)  # computed and unused, as officially
        distance /= distance.max()
    l_map[l_map == -1] = 1
    return _conn_from_lmap(pd, gt, l_map)


def base_conn_lean(pd: np.ndarray, gt: np.ndarray) -> float:
    """Same definition with scipy labels + bincount and no distance transform."""
    l_map = np.full(pd.shape, -1.0, dtype=np.float32)
    for i in range(1, THRESHOLDS.size):
        labels, count = ndimage.label((pd >= THRESHOLDS[i]) & (gt >= THRESHOLDS[i]))
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        l_map[(l_map == -1) & (labels != sizes.argmax())] = THRESHOLDS[i - 1]
    l_map[l_map == -1] = 1
    return _conn_from_lmap(pd, gt, l_map)


def base_full(pd: np.ndarray, gt: np.ndarray, tri: np.ndarray, conn: Callable) -> dict[str, float]:
    """The ten metrics of one image, grouped as the official evaluation loop computes them."""
    forced_diff = _forced(pd, tri) - gt
    unknown = float((tri == 128).sum())
    diff = pd - gt
    abs_diff = np.abs(diff)
    return {
        "sad_t": float(np.abs(forced_diff).sum() / 1000),
        "mse_t": float((forced_diff**2).sum() / unknown),
        "mad_t": float(np.abs(forced_diff).sum() / unknown),
        "sad": float(abs_diff.sum() / 1000),
        "mse": float((diff**2).sum() / pd.size),
        "mad": float(abs_diff.sum() / pd.size),
        "sad_fg": float((abs_diff * (tri == 255)).sum() / 1000),
        "sad_bg": float((abs_diff * (tri == 0)).sum() / 1000),
        "conn": conn(pd, gt),
        "grad": base_grad(pd, gt),
    }


# -------------------------------------------------------------------------------------- harness
def load_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Prediction, alpha (float64 in [0, 1]) and trimap of the sample portrait, or synthetic ones."""
    split, stem = SAMPLE
    pred_png = FIXTURES / "reference" / "metrics" / split / f"{stem}.png"
    root = FIXTURES / "p3m_samples" / "validation" / split
    if pred_png.is_file():
        pd = np.asarray(Image.open(pred_png), dtype=np.float64) / 255.0
        gt = np.asarray(Image.open(root / "mask" / f"{stem}.png"), dtype=np.float64) / 255.0
        tri = np.array(Image.open(root / "trimap" / f"{stem}.png"))
        return pd, gt, tri, f"{split}/{stem}"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:1080, 0:1618]
    gt = np.clip(1.5 - np.hypot((yy - 700) / 380, (xx - 800) / 300), 0, 1)
    gt = np.round(gt * 255) / 255
    pd = np.clip(np.round((gt + rng.normal(0, 0.03, gt.shape)) * 255), 0, 255) / 255
    tri = np.where(gt >= 1, 255, np.where(gt <= 0, 0, 128)).astype(np.uint8)
    return pd, gt, tri, "synthetic 1080x1618"


def median_time(fn: Callable[[], object], runs: int, sync: Callable[[], None]) -> tuple[float, object]:
    value = fn()  # warm-up (allocator, imports)
    times = []
    for _ in range(runs):
        sync()
        start = time.perf_counter()
        value = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per row (median reported)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (baselines are single-core)"
    )
    parser.add_argument("--device", default="cpu", help="device of our tensors, e.g. cuda")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "metrics.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    load_before = os.getloadavg()[0]
    pd, gt, tri, source = load_sample()
    p = torch.from_numpy(pd).to(device)
    t = torch.from_numpy(gt).to(device)
    tr = torch.from_numpy(tri).to(device)

    rows = {
        "sad": (lambda: base_sad(pd, gt), lambda: ours.sad(p, t)),
        "mse": (lambda: base_mse(pd, gt), lambda: ours.mse(p, t)),
        "mad": (lambda: base_mad(pd, gt), lambda: ours.mad(p, t)),
        "grad": (lambda: base_grad(pd, gt), lambda: ours.gradient_error(p, t)),
        "conn": (lambda: base_conn_official(pd, gt), lambda: ours.connectivity_error(p, t)),
        "sad_t": (lambda: base_sad_t(pd, gt, tri), lambda: ours.sad_trimap(p, t, tr)),
        "mse_t": (lambda: base_mse_t(pd, gt, tri), lambda: ours.mse_trimap(p, t, tr)),
        "mad_t": (lambda: base_mad_t(pd, gt, tri), lambda: ours.mad_trimap(p, t, tr)),
        "sad_fg": (lambda: base_sad_fg(pd, gt, tri), lambda: ours.sad_foreground(p, t, tr)),
        "sad_bg": (lambda: base_sad_bg(pd, gt, tri), lambda: ours.sad_background(p, t, tr)),
    }
    results: dict[str, dict[str, float]] = {}
    nop = lambda: None  # noqa: E731  (numpy baselines need no device sync)
    for name, (base_fn, our_fn) in rows.items():
        base_s, base_v = median_time(base_fn, args.runs, nop)
        our_s, our_v = median_time(our_fn, args.runs, sync)
        row = {"baseline_s": base_s, "ours_s": our_s, "speedup": base_s / our_s}
        row["baseline_value"], row["ours_value"] = float(base_v), float(our_v)
        row["rel_diff"] = abs(row["ours_value"] - row["baseline_value"]) / abs(row["baseline_value"])
        if name == "conn":
            lean_s, lean_v = median_time(lambda: base_conn_lean(pd, gt), args.runs, nop)
            row.update(lean_s=lean_s, lean_speedup=lean_s / our_s, lean_value=float(lean_v))
        results[name] = row

    collection = matting_metrics()

    def ours_full() -> dict[str, float]:
        collection.reset()
        collection.update(p, t, tr)
        return {k: float(v) for k, v in collection.compute().items()}

    full_official_s, full_official_v = median_time(
        lambda: base_full(pd, gt, tri, base_conn_official), args.runs, nop
    )
    full_lean_s, _ = median_time(lambda: base_full(pd, gt, tri, base_conn_lean), args.runs, nop)
    full_ours_s, full_ours_v = median_time(ours_full, args.runs, sync)
    full_rel = max(
        abs(full_ours_v[k] - full_official_v[k]) / abs(full_official_v[k]) for k in full_official_v
    )
    results["full set"] = {
        "baseline_s": full_official_s,
        "ours_s": full_ours_s,
        "speedup": full_official_s / full_ours_s,
        "lean_s": full_lean_s,
        "lean_speedup": full_lean_s / full_ours_s,
        "rel_diff": full_rel,
    }

    print(
        f"\nMatting metrics on {source} {pd.shape}, ours on {device} ({args.threads} thread(s)), "
        f"median of {args.runs} runs; 1-min load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| metric | official steps (ms) | lean numpy (ms) | ours (ms) | speed-up vs official | "
        "vs lean | max rel. diff |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in results.items():
        lean = row.get("lean_s")
        lean_ms = f"{1000 * lean:.1f}" if lean is not None else "="
        lean_x = f"{row['lean_speedup']:.1f}x" if lean is not None else f"{row['speedup']:.1f}x"
        print(
            f"| {name} | {1000 * row['baseline_s']:.1f} | {lean_ms} | {1000 * row['ours_s']:.1f} | "
            f"{row['speedup']:.1f}x | {lean_x} | {row['rel_diff']:.1e} |"
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "source": source,
        "shape": list(pd.shape),
        "device": str(device),
        "threads": args.threads,
        "runs": args.runs,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min": [load_before, os.getloadavg()[0]],  # before / after: others share the CPUs
    }
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
