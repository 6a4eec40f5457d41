"""``src/eval.py trainer.devices=2`` (DDP on the CPU) gives the 1-process numbers, image by image.

On tiny synthetic portraits (3 per split, uneven over 2 ranks): what is checked is how the ranks
share and reduce the images, which the images' size does not change.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from p3m.data.synthetic import ensure_synthetic_dataset
from tests.cli import run_python
from tests.conftest import REPO_ROOT, TINY_SYNTHETIC

SPLITS = ("P3M-500-P", "P3M-500-NP")
METRICS = ["sad", "mse", "sad_t"]


@pytest.fixture(scope="module")
def authors_checkpoint(
    official_weights: Callable[..., dict[str, torch.Tensor]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """ResNet-34 P3M-Net weights in the authors' key layout, saved as their files hold them."""
    path = tmp_path_factory.mktemp("authors") / "p3mnet_r34.pth"
    torch.save({"state_dict": official_weights("r34", seed=5)}, path)
    return path


@pytest.fixture(scope="module")
def three_per_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny synthetic portraits, 3 evaluation images per split."""
    params = {**TINY_SYNTHETIC, "num_test": 3}
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("three_per_split"), **params)


def _evaluate(root: Path, checkpoint: Path, run: Path, devices: int) -> subprocess.CompletedProcess[str]:
    """eval.py on 3 portraits per split (uneven over 2 ranks), one torch thread per process."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
    args = [
        f"ckpt_path={checkpoint}",
        "data=synthetic",
        f"data.root={root}",
        f"data.synthetic.num_train={TINY_SYNTHETIC['num_train']}",
        "data.synthetic.num_test=3",
        "data.synthetic.size=[96,64]",
        "data.num_workers=0",
        "test_strategy=resize",
        "resize_mode=fast",  # torch interpolation: the cheapest path to a matte
        f"metrics=[{','.join(METRICS)}]",
        "trainer.accelerator=cpu",
        f"trainer.devices={devices}",
        *(["trainer.strategy=ddp"] if devices > 1 else []),
        f"paths.log_dir={run.parent / 'logs'}",
        f"hydra.run.dir={run}",
    ]
    return run_python([sys.executable, str(REPO_ROOT / "src" / "eval.py"), *args], cwd=run.parent, env=env)


@pytest.mark.slow
def test_two_processes_equal_one_per_image(
    three_per_split: Path, authors_checkpoint: Path, tmp_path: Path
) -> None:
    runs = {devices: tmp_path / f"devices_{devices}" for devices in (1, 2)}
    for devices, run in runs.items():
        result = _evaluate(three_per_split, authors_checkpoint, run, devices)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stdout + result.stderr  # really DDP
    one, two = (json.loads((run / "metrics.json").read_text()) for run in runs.values())

    assert one["meta"]["processes"] == 1 and two["meta"]["processes"] == 2
    for split in SPLITS:
        # every image scored once (3 images over 2 ranks: no padding repeat), with the same values
        assert len(one[split]["per_image"]) == 3
        assert two[split]["per_image"] == one[split]["per_image"]
        assert list(two[split]["mean"]) == METRICS
        for name in METRICS:  # the means are reduced from per-rank sums: equal up to summation order
            assert two[split]["mean"][name] == pytest.approx(one[split]["mean"][name], rel=1e-12)
    assert list(two["gap"]) == ["test/np_minus_p"]
    for name in METRICS:
        expected = one["P3M-500-NP"]["mean"][name] - one["P3M-500-P"]["mean"][name]
        assert two["gap"]["test/np_minus_p"][name] == pytest.approx(expected, rel=1e-12)
    tables = [list(csv.reader((run / "per_image.csv").open())) for run in runs.values()]
    assert tables[0] == tables[1] and len(tables[0]) == 1 + 2 * 3
