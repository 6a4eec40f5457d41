"""Which OpenCV optical flow MESSDdt should use: accuracy on alpha mattes whose true motion is known.

MESSDdt compares a frame's matting error with the next frame's at the same point of the subject, so
it needs the subject's motion between the ground-truth alphas. The video benchmark moves each
portrait by a known affine transform per frame (:func:`p3m.data.video_benchmark.subject_motion`):
the true displacement of a pixel from frame t to t+1 is ``M[t+1] @ inverse(M[t])``. This script
warps portraits that way, estimates the flow between consecutive alphas with DIS (three presets)
and with Farneback (MaGGIe's parameters), and reports the end-point error where it matters, on the
subject's soft edge (0 < alpha < 1, widened by 3 px), and the time per pair.

    python bench/bench_alpha_flow.py [--clips 4] [--size 256 192]

Prints a markdown table and writes bench/results/alpha_flow.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.data.synthetic_portrait import render_portrait  # noqa: E402
from p3m.data.video_benchmark import Subject, real_subjects, subject_motion  # noqa: E402

PORTRAITS = REPO / "tests/fixtures/p3m_samples/validation/P3M-500-NP"
FRAMES = 11  # per clip: 10 pairs


def farneback(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(
        first, second, None, 0.5, 5, 10, 2, 7, 1.5, cv2.OPTFLOW_FARNEBACK_GAUSSIAN
    )


def dis(preset: int):
    flow = cv2.DISOpticalFlow_create(preset)
    return lambda first, second: flow.calc(first, second, None)


METHODS = {
    "DIS ultrafast": dis(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST),
    "DIS fast": dis(cv2.DISOPTICAL_FLOW_PRESET_FAST),
    "DIS medium (ours)": dis(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM),
    "Farneback (MaGGIe)": farneback,
}


def true_flow(current: np.ndarray, following: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 2) displacement of each pixel of frame t under ``following @ inverse(current)``."""
    full = np.vstack([following, [0, 0, 1]]) @ np.linalg.inv(np.vstack([current, [0, 0, 1]]))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    moved_x = full[0, 0] * xs + full[0, 1] * ys + full[0, 2]
    moved_y = full[1, 0] * xs + full[1, 1] * ys + full[1, 2]
    return np.dstack([moved_x - xs, moved_y - ys])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=2, default=[256, 192])
    args = parser.parse_args()
    height, width = args.size
    subjects = real_subjects(PORTRAITS, height, width)
    for seed in range(max(0, args.clips - len(subjects))):
        portrait = render_portrait(np.random.default_rng([7, seed]), height, width)
        subjects.append(Subject(portrait.fg, portrait.alpha))
    errors: dict[str, list[float]] = {name: [] for name in METHODS}
    seconds: dict[str, float] = dict.fromkeys(METHODS, 0.0)
    pairs = 0
    for index, subject in enumerate(subjects[: args.clips]):
        motion = subject_motion(np.random.default_rng([3, index]), FRAMES, height, width)
        alphas = [cv2.warpAffine(subject.alpha, m, (width, height)) for m in motion]
        for t in range(FRAMES - 1):
            truth = true_flow(motion[t], motion[t + 1], height, width)
            edge = (alphas[t] > 0) & (alphas[t] < 255)
            band = cv2.dilate(edge.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
            for name, method in METHODS.items():
                start = time.perf_counter()
                flow = method(alphas[t], alphas[t + 1])
                seconds[name] += time.perf_counter() - start
                errors[name].append(float(np.linalg.norm(flow - truth, axis=2)[band].mean()))
            pairs += 1
    rows = [
        {"method": name, "epe_px": float(np.mean(errors[name])), "ms_per_pair": 1000 * seconds[name] / pairs}
        for name in METHODS
    ]
    print(f"\n{pairs} pairs of {height}x{width} alphas; end-point error on the soft edge (px)\n")
    print("| flow | end-point error (px) | ms per pair |\n|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {row['epe_px']:.3f} | {row['ms_per_pair']:.1f} |")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "alpha_flow.json").write_text(
        json.dumps({"args": vars(args), "pairs": pairs, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
