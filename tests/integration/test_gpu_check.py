"""bench/gpu_check.sh runs on the CPU at tiny sizes (``--smoke``), so it cannot rot until a GPU runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_smoke_run_on_the_cpu(tmp_path: Path) -> None:
    env = os.environ | {"PYTHON": sys.executable, "P3M_RESULTS": str(tmp_path), "PYTHONPATH": ""}
    run = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    loader = json.loads((tmp_path / "gpu_loader.json").read_text())
    for row in ("loader", "device_tensors"):
        assert loader[row]["images_per_s"] > 0 and loader[row]["steps"] == 1
        assert 0 <= loader[row]["wait_share"] < 1
    assert loader["eval_hybrid"]["images_per_s"] > 0 and loader["eval_hybrid"]["images"] == 2
    assert loader["data"]["train_images"] == 4
    packed = tmp_path / "loader_data" / "bench_4x80x96" / "train" / "packed"
    assert len(list((packed / "blurred_image").glob("*.npy"))) == 4  # the loop read the packed format
    step = json.loads((tmp_path / "gpu_train_step.json").read_text())
    assert set(step["results"]["smoke"]) >= {"fp32", "bf16-cl"}  # the script, not the network, is checked


def test_gpu_check_names_the_missing_wheels(tmp_path: Path) -> None:
    """Without the packages and without wheels it stops before any work, saying how to get them."""
    fake = tmp_path / "python"
    # a python that finds no module at all: every package counts as missing
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"print('hydra-core omegaconf')\"\n")
    fake.chmod(0o755)
    env = os.environ | {
        "PYTHON": str(fake),
        "P3M_RESULTS": str(tmp_path),
        "P3M_WHEELS": str(tmp_path / "none"),
    }
    run = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--smoke"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 1
    assert "missing Python packages: hydra-core omegaconf" in run.stderr
    assert "bash bench/fetch_wheels.sh" in run.stderr
