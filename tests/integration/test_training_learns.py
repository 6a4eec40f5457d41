"""Training learns: a short seeded run on tiny synthetic portraits improves its validation mattes.

The other training tests check that a step runs, matches the official one and resumes exactly; this
one checks the point of it all. Validation SAD must fall by at least 30 % from the run's first
validation and end below the SAD of the best constant matte, on both splits. Zeroing the loss weights
or never stepping the optimiser makes it fail (checked by hand: docs/demo.md).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig

from p3m.data.io import read_mask
from p3m.data.synthetic import ensure_synthetic_dataset
from p3m.tasks.train import train

SPLITS = {"p": "P3M-500-P", "np": "P3M-500-NP"}


def best_constant_sad(mask_dir: Path) -> float:
    """Mean per-image SAD (/1000) of the constant matte with the lowest SAD: the median alpha of the split."""
    alphas = [read_mask(path, dtype=np.float64) for path in sorted(mask_dir.glob("*.png"))]
    constant = float(np.median(np.concatenate([a.ravel() for a in alphas])))
    return float(np.mean([np.abs(a - constant).sum() / 1000 for a in alphas]))


@pytest.mark.slow
def test_short_run_lowers_validation_sad_below_a_constant_matte(
    compose_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    params = {"num_train": 8, "num_test": 2, "size": (128, 128), "seed": 0}
    root = ensure_synthetic_dataset(tmp_path / "synthetic", **params)
    overrides = [
        "data=synthetic",
        f"data.root={root}",
        *(f"data.synthetic.{key}={value}" for key, value in params.items() if key != "size"),
        "data.synthetic.size=[128,128]",
        "trainer=cpu",
        "callbacks=none",  # no 0.5 GB checkpoints: neither ours ...
        "++trainer.enable_checkpointing=false",  # ... nor the one Lightning adds when none is configured
        "logger=csv",  # the validation history, read back below
        "seed=0",
        # whole portraits at half size: what validation's resize strategy gives the network
        "augmentation=none",
        "data.train_size=64",
        "data.batch_size=4",  # two steps an epoch
        "data.num_workers=0",
        "model.val_strategy=resize",
        "model.heavy_every_n_epochs=0",
        "model.optimizer.lr=1e-3",
        "trainer.max_epochs=-1",
        "trainer.max_steps=32",
        "trainer.check_val_every_n_epoch=2",  # every 4 steps
        "trainer.num_sanity_val_steps=0",
    ]
    train(compose_config("train", overrides))

    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "version_0" / "metrics.csv").open()))
    for prefix, split in SPLITS.items():
        history = [float(r[f"val/{prefix}/sad"]) for r in rows if r.get(f"val/{prefix}/sad")]
        constant = best_constant_sad(root / "validation" / split / "mask")
        assert len(history) == 8, history
        assert history[-1] <= 0.7 * history[0], f"{split}: SAD did not fall by 30 %: {history}"
        assert history[-1] < constant, f"{split}: SAD {history} not below a constant matte's {constant:.3f}"
