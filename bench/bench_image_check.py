"""Cost of the truncation check of every image read (``p3m.data.io``) against decoding the file.

The check walks a JPEG's segments and scans its entropy-coded data for the end-of-image marker (a
PNG's chunks to IEND) on the bytes already read; decoding is what a training read does next. Both
run on the 1080p sample portraits in tests/fixtures/p3m_samples (JPEG photos, PNG mattes).

    python bench/bench_image_check.py [--runs 200]

Prints one line per file: size, check time in µs (best of 5 rounds of ``--runs`` calls), decode
time in ms and the check's share of it.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.data import io  # noqa: E402

SAMPLES = REPO / "tests" / "fixtures" / "p3m_samples" / "train"


def _best(call: Callable[[], object], number: int) -> float:
    """Seconds per call, best of 5 rounds of `number` calls (the least disturbed by other load)."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number


def main() -> None:
    """Time the check and the decode of every sample training image and matte."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="calls per timing round of the check")
    args = parser.parse_args()
    files = sorted(SAMPLES.glob("blurred_image/*.jpg")) + sorted(SAMPLES.glob("mask/*.png"))
    for path in files:
        data = path.read_bytes()
        check = io._jpeg_is_complete if path.suffix == ".jpg" else io._png_is_complete
        assert check(data), path
        buffer = np.frombuffer(data, np.uint8)
        check_s = _best(partial(check, data), args.runs)
        decode_s = _best(partial(cv2.imdecode, buffer, cv2.IMREAD_UNCHANGED), 3)
        shape = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED).shape
        print(
            f"{path.name} {shape} {len(data) / 1e3:.0f} kB: check {check_s * 1e6:.1f} µs, "
            f"decode {decode_s * 1e3:.1f} ms ({check_s / decode_s:.2%} of it)"
        )


if __name__ == "__main__":
    main()
