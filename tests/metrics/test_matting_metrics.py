"""Metric classes and the collection: parity with the official values, accumulation, pickling."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.utilities.data import dim_zero_sum

from p3m.metrics import (
    METRIC_CLASSES,
    METRIC_NAMES,
    SAD,
    SADForeground,
    SADTrimap,
    matting_metrics,
)
from tests.metrics.test_functional import random_mattes, reference

# Keys of official_values.json for our canonical names.
OFFICIAL_KEYS = {
    "sad": "SAD",
    "mse": "MSE",
    "mad": "MAD",
    "grad": "GRAD",
    "conn": "CONN",
    "sad_t": "SAD_TRIMAP",
    "mse_t": "MSE_TRIMAP",
    "mad_t": "MAD_TRIMAP",
    "sad_fg": "SAD_FG",
    "sad_bg": "SAD_BG",
}
PARITY_RTOL = {"conn": 1e-5}  # every other metric: 1e-6
OFFICIAL_IMAGES = [
    f"{split}/{stem}.png"
    for split, stems in (
        ("P3M-500-P", ("p_09ba26b4", "p_22fc0130", "p_514ca06a", "p_51c916fc")),
        ("P3M-500-NP", ("p_07141906", "p_818e689d", "p_bc5cfad1", "p_bd6af989")),
    )
    for stem in stems
]


def _png(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path)))


@pytest.mark.parametrize("key", OFFICIAL_IMAGES)
def test_parity_with_official_values(key: str, reference_dir: Path, samples_dir: Path) -> None:
    """All ten metrics of one sample image against the official evaluate.py values."""
    official = json.loads((reference_dir / "metrics" / "official_values.json").read_text())[key]
    split, name = key.split("/")
    stem = name.removesuffix(".png")
    # The official evaluation reads the PNGs as float64 k / 255: pass them as uint8 (or float64).
    pred = _png(reference_dir / "metrics" / key)
    alpha = _png(samples_dir / "validation" / split / "mask" / f"{stem}.png")
    trimap = _png(samples_dir / "validation" / split / "trimap" / f"{stem}.png")
    values = matting_metrics()(pred, alpha, trimap)
    errors = {n: abs(values[n].item() - official[k]) / abs(official[k]) for n, k in OFFICIAL_KEYS.items()}
    for metric, error in errors.items():
        assert error <= PARITY_RTOL.get(metric, 1e-6), errors


def test_accumulates_the_mean_over_images_of_several_batches() -> None:
    pred, target, trimap = random_mattes(n=5, seed=3)
    collection = matting_metrics()
    for batch in (slice(0, 2), slice(2, 3), slice(3, 5)):  # uneven batches: per-image averaging
        collection.update(pred[batch], target[batch][:, None], trimap[batch])
    results = collection.compute()
    assert set(results) == set(METRIC_NAMES)
    for name in METRIC_NAMES:
        expected = np.mean(
            [reference(name, *(x[i].numpy() for x in (pred, target, trimap))) for i in range(5)]
        )
        assert results[name].item() == pytest.approx(expected, rel=1e-10), name


def test_forward_returns_the_batch_value_and_keeps_the_running_mean() -> None:
    pred, target, trimap = random_mattes(n=2, seed=4)
    metric = SADTrimap()
    first = metric(pred[:1], target[:1], trimap[:1])
    second = metric(pred[1:], target[1:], trimap[1:])
    assert metric.compute().item() == pytest.approx((first.item() + second.item()) / 2)


def test_compute_groups_off_keeps_sad_fg_and_sad_bg_apart() -> None:
    """A perfect first image makes every state equal; torchmetrics would then merge the metrics."""
    pred, target, trimap = random_mattes(n=2, seed=5)
    collection = matting_metrics(["sad_fg", "sad_bg", "mse_t", "mad_t"])
    collection.update(target[:1], target[:1], trimap[:1])  # all four scores are 0
    collection.update(pred[1:], target[1:], trimap[1:])
    results = collection.compute()
    images = [[x[i].numpy() for x in (p, target, trimap)] for i, p in ((0, target), (1, pred))]
    for name in ("sad_fg", "sad_bg", "mse_t", "mad_t"):
        expected = np.mean([reference(name, *image) for image in images])
        assert results[name].item() == pytest.approx(expected, rel=1e-10), name
    assert results["sad_fg"] != results["sad_bg"]


def test_factory_names_prefix_and_errors() -> None:
    assert set(matting_metrics()) == set(METRIC_NAMES)
    cheap = [n for n in METRIC_NAMES if n not in ("grad", "conn")]
    fast = matting_metrics(cheap, prefix="val/p/")
    pred, target, trimap = random_mattes(n=1)
    fast.update(pred, target, trimap)
    assert sorted(fast.compute()) == sorted(f"val/p/{n}" for n in cheap)
    with pytest.raises(ValueError, match="unknown matting metric"):
        matting_metrics(["sad", "SAD"])
    with pytest.raises(ValueError, match="listed twice"):
        matting_metrics(["sad", "sad"])


def test_trimap_metrics_require_a_trimap() -> None:
    pred, target, _ = random_mattes(n=1)
    with pytest.raises(ValueError, match="sad_fg needs a trimap"):
        SADForeground().update(pred, target)
    matting_metrics(["grad", "conn"]).update(pred, target)  # no trimap needed


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_class_attributes(name: str) -> None:
    metric = METRIC_CLASSES[name]()
    assert metric.higher_is_better is False
    assert metric.full_state_update is False
    assert metric.is_differentiable is (name not in ("grad", "conn"))


def test_pickle_and_clone_keep_the_state() -> None:
    pred, target, trimap = random_mattes(n=3, seed=6)
    collection = matting_metrics(["sad", "conn", "sad_bg"])
    collection.update(pred[:2], target[:2], trimap[:2])
    restored = pickle.loads(pickle.dumps(collection))
    clone = collection.clone()
    for copy in (restored, clone):
        copy.update(pred[2:], target[2:], trimap[2:])
    collection.update(pred[2:], target[2:], trimap[2:])
    expected = collection.compute()
    for copy in (restored, clone):
        assert {k: v.item() for k, v in copy.compute().items()} == {k: v.item() for k, v in expected.items()}
    # A clone's state is independent of the original.
    clone.reset()
    assert collection["sad"].num_images.item() == 3


def test_states_are_float64_sums_and_counts() -> None:
    metric = SAD()
    metric.update(*random_mattes(n=2)[:2])
    assert metric.score_sum.dtype == torch.float64 and metric.num_images.item() == 2
    # Both states are summed across processes, so the mean is over all images of all processes.
    assert metric._reductions == {"score_sum": dim_zero_sum, "num_images": dim_zero_sum}
