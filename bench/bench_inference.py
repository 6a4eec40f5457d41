"""Test-time strategies: accuracy of both resize modes against the official mattes, and their cost.

Accuracy: the seed-5 ResNet-34 P3M-Net (``fill_official.fill_state_dict(manifest, seed=5)``) on
``P3M-500-NP/p_07141906.jpg`` (1080x1080), compared with ``tests/fixtures/reference/inference/*.png`` (the
official ``inference_img``): mean, 99th percentile and max absolute difference for RESIZE and HYBRID
in ``paper`` and ``fast`` resize mode, and for the baseline below.

Cost: median wall time of ``infer_alpha`` per strategy and mode against a plain reimplementation of
the official steps, written here from ``inference_img`` / ``inference_once`` (ACM MM 2021
``core/test.py``), not copied: ``skimage.transform.resize`` with the 0.14.5 settings on the uint8
image (``* 255``), a float32 tensor ``/ 255`` through ``transforms.Normalize``, the whole network
on both passes, argmax trimap as uint8, numpy maps resized back (RESIZE resizes trimap, local and
fused matte, as the official code, which uses only the last), and the HYBRID rule in numpy. All
variants run interleaved, so they see the same machine load. Variants:

* ``ours paper``: the same maths (HYBRID's half-size pass runs only backbone + segmentation
  decoder, its full-size pass skips the last segmentation stage and the side heads);
* ``ours fast``: resizing in torch (bilinear, differs at isolated pixels);
* ``channels-last`` and ``bf16`` (``fp16`` on CUDA): the documented fast modes; their mattes move,
  and the first table gives by how much (the official steps match the fixture to float rounding).

Two rows per variant:

* ``with network``: what a user waits for (the network dominates on a CPU); HYBRID only unless
  ``--network-strategies resize hybrid``;
* ``overhead``: the same pipeline around a stand-in network that returns fixed outputs of the right
  shape at no cost, i.e. the resizing and fusion alone, where the modes differ.

    python bench/bench_inference.py [--runs 3] [--threads 2] [--device cpu] [--no-network-timing]

On a shared CPU the ``with network`` rows vary by +-20% between runs (the network is the same in
every variant); the ``overhead`` rows are the comparison that matters.

Prints a markdown table and writes bench/results/inference.json.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import skimage
import torch
from skimage.transform import resize as sk_resize
from torch import Tensor, nn
from torchvision import transforms as tvt

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]  # the clone's p3m (installed or not) and its tests.fixtures

from p3m.data.io import read_image  # noqa: E402
from p3m.models import P3MNet, P3MOutput  # noqa: E402
from p3m.models.official_format import convert_official_state_dict  # noqa: E402
from p3m.models.performance import to_channels_last  # noqa: E402
from p3m.models.test_time import infer_alpha  # noqa: E402
from tests.fixtures import read_matte16  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
STEM = "p_07141906"
MAX_SIDE = 1600
NORMALIZE = tvt.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


# -- the official steps, written out ------------------------------------------------------------------
def resize_0_14(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``skimage.transform.resize`` with the defaults of the 0.14.5 the official repositories pin."""
    return sk_resize(image, size, order=1, mode="constant", cval=0, anti_aliasing=False)


def official_pass(net: nn.Module, image: np.ndarray, device: torch.device) -> tuple[np.ndarray, ...]:
    tensor = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1).to(device)
    out = net(NORMALIZE(tensor / 255.0).unsqueeze(0))
    trimap = out[0].argmax(dim=1)[0].cpu().numpy().astype(np.int64)
    trimap[trimap == 1] = 128
    trimap[trimap == 2] = 255
    return trimap.astype(np.uint8), out[1][0, 0].cpu().numpy(), out[2][0, 0].cpu().numpy()


def official_size(h: int, w: int, ratio: float) -> tuple[int, int]:
    sh, sw = int(h * ratio), int(w * ratio)
    return min(MAX_SIDE, sh - sh % 32), min(MAX_SIDE, sw - sw % 32)


@torch.no_grad()
def official_inference(net: nn.Module, image: np.ndarray, strategy: str, device: torch.device) -> np.ndarray:
    h, w = image.shape[:2]
    scaled = resize_0_14(image, official_size(h, w, 0.5)) * 255.0
    trimap, local, fusion = official_pass(net, scaled, device)
    if strategy == "resize":  # the official RESIZE also resizes the local matte and the trimap back
        local, trimap = resize_0_14(local, (h, w)), resize_0_14(trimap, (h, w)) * 255.0  # unused there too
        return resize_0_14(fusion, (h, w))
    trimap = resize_0_14(trimap, (h, w)) * 255.0
    _, local, _ = official_pass(net, resize_0_14(image, official_size(h, w, 1.0)) * 255.0, device)
    local = resize_0_14(local, (h, w))
    uncertain = np.ones(trimap.shape)
    uncertain[(trimap == 255) | (trimap == 0)] = 0
    return trimap * (1.0 - uncertain) / 255 + local * uncertain


# -- setup --------------------------------------------------------------------------------------------
def seed5_net() -> P3MNet:
    reference = FIXTURES / "reference"
    spec = importlib.util.spec_from_file_location("fill_official", reference / "fill_official.py")
    fill = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fill)
    manifest = json.loads((reference / "models" / "r34_manifest.json").read_text())
    net = P3MNet("resnet34")
    net.load_state_dict(convert_official_state_dict(fill.fill_state_dict(manifest, seed=5)))
    return net.eval()


# Timed with the network by default, beside the fastest mode (each HYBRID run costs seconds on a CPU).
QUICK_VARIANTS = ("official steps", "ours paper")


class FixedOutputs(nn.Module):
    """Stand-in network: fixed official-order outputs of the input's size (three classes, soft mattes),
    made once per size, so a call costs nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.made: dict[tuple[int, ...], P3MOutput] = {}

    def forward(self, x: Tensor) -> P3MOutput:
        if x.shape not in self.made:
            n, _, h, w = x.shape
            ramp = torch.linspace(-1, 1, w, device=x.device).expand(n, 1, h, w)
            logits = torch.cat([-ramp * 4, 1 - ramp.abs() * 4, ramp * 4], dim=1)
            local = torch.sigmoid(ramp * 3)
            self.made[x.shape] = P3MOutput(logits, local, local, logits, logits, logits)
        return self.made[x.shape]


def errors(ours: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    diff = np.abs(ours.astype(np.float64) - reference)
    return {
        "mean": float(diff.mean()),
        "p99": float(np.percentile(diff, 99)),
        "max": float(diff.max()),
        "pixels_over_1e-3": int((diff > 1e-3).sum()),
    }


def median_seconds(fn: Callable[[], object], runs: int, sync: Callable[[], None]) -> list[float]:
    times = []
    for _ in range(runs):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per variant (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="device of the network, e.g. cuda")
    parser.add_argument(
        "--no-network-timing", action="store_true", help="time only the overhead rows (minutes faster)"
    )
    parser.add_argument(
        "--network-strategies",
        nargs="+",
        default=["hybrid"],
        choices=["resize", "hybrid"],
        help="strategies timed with the network (the overhead rows always time both)",
    )
    parser.add_argument(
        "--all-variants",
        action="store_true",
        help="time every variant with the network (default: official steps, ours paper, the fastest)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "inference.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    image = read_image(
        FIXTURES / "p3m_samples" / "validation" / "P3M-500-NP" / "original_image" / f"{STEM}.jpg"
    )
    tensor = torch.from_numpy(image).permute(2, 0, 1).to(device)
    net = seed5_net().to(device)
    networks = {"with network": net, "overhead": FixedOutputs().to(device)}
    nhwc = {"with network": to_channels_last(copy.deepcopy(net)), "overhead": networks["overhead"]}
    strategies = ("resize", "hybrid")
    fast_precision = torch.bfloat16 if device.type == "cpu" else torch.float16
    fastest = f"ours fast, channels-last, {str(fast_precision).removeprefix('torch.')}"

    def variants(row: str, strategy: str) -> dict[str, Callable[[], np.ndarray]]:
        net, cl_net = networks[row], nhwc[row]
        return {
            "official steps": lambda: official_inference(net, image, strategy, device),
            "ours paper": lambda: infer_alpha(net, tensor, strategy, "paper").alpha.cpu().numpy(),
            "ours fast": lambda: infer_alpha(net, tensor, strategy, "fast").alpha.cpu().numpy(),
            "ours fast, channels-last": lambda: (
                infer_alpha(cl_net, tensor, strategy, "fast").alpha.cpu().numpy()
            ),
            fastest: lambda: (
                infer_alpha(cl_net, tensor, strategy, "fast", precision=fast_precision).alpha.cpu().numpy()
            ),
        }

    accuracy: dict[str, dict[str, dict[str, float]]] = {}
    for strategy in strategies:
        reference = read_matte16(FIXTURES / "reference" / "inference" / f"r34_{strategy}_{STEM}.png")
        accuracy[strategy] = {
            name: errors(fn(), reference) for name, fn in variants("with network", strategy).items()
        }

    timings: dict[str, dict[str, dict[str, float]]] = {}
    for row in networks:
        if row == "with network" and args.no_network_timing:
            continue
        for strategy in strategies if row == "overhead" else args.network_strategies:
            fns = variants(row, strategy)
            if row == "with network" and not args.all_variants:
                fns = {name: fn for name, fn in fns.items() if name in (*QUICK_VARIANTS, fastest)}
            for fn in fns.values():  # warm-up
                fn()
            samples: dict[str, list[float]] = {name: [] for name in fns}
            for _ in range(args.runs):  # interleaved: every variant sees the same load
                for name, fn in fns.items():
                    samples[name] += median_seconds(fn, 1, sync)
            medians = {name: statistics.median(s) for name, s in samples.items()}
            base = medians["official steps"]
            timings[f"{strategy} {row}"] = {
                name: {
                    "median_ms": round(1000 * m, 1),
                    "ratio_vs_official": round(m / base, 3),
                    "speedup": round(base / m, 2),
                }
                for name, m in medians.items()
            }

    print(f"\n{STEM}.jpg ({image.shape[0]}x{image.shape[1]}), seed-5 r34, {args.threads} threads, {device}\n")
    print("| strategy | variant | mean abs diff | p99 | max | pixels > 1e-3 |")
    print("|---|---|---|---|---|---|")
    for strategy, rows in accuracy.items():
        for name, e in rows.items():
            print(
                f"| {strategy} | {name} | {e['mean']:.2e} | {e['p99']:.2e} | {e['max']:.2e} "
                f"| {e['pixels_over_1e-3']} |"
            )
    print("\n| strategy | variant | median ms | time vs official steps | speed-up |")
    print("|---|---|---|---|---|")
    for label, rows in timings.items():
        for name, t in rows.items():
            print(f"| {label} | {name} | {t['median_ms']} | {t['ratio_vs_official']} | {t['speedup']}x |")

    meta = {
        "image": f"{STEM}.jpg",
        "size": list(image.shape[:2]),
        "runs": args.runs,
        "threads": args.threads,
        "device": str(device),
        "torch": torch.__version__,
        "scikit-image": skimage.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "accuracy": accuracy, "timings": timings}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
