"""Score predictions on evaluation splits, per image and on average, as the papers report them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from src.metrics.collection import METRIC_NAMES, TRIMAP_METRIC_NAMES, matting_metrics

Predictor = Callable[[Mapping[str, Any]], Tensor]


@dataclass
class SplitResult:
    """Metrics of one evaluation split: the per-image average and every image's values."""

    name: str
    mean: dict[str, float] = field(default_factory=dict)
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)


def _first(value: Any) -> Any:
    """Undo the DataLoader's batch of one (lists for strings, a leading dim for tensors)."""
    if isinstance(value, (list, tuple)):
        return value[0]
    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == 1:
        return value[0]
    return value


def evaluate_split(
    name: str,
    samples: Iterable[Mapping[str, Any]],
    predict: Predictor,
    metric_names: Sequence[str] = METRIC_NAMES,
    save_dir: Path | None = None,
) -> SplitResult:
    """Predict and score every sample of one split.

    Args:
        name: Split name (``P3M-500-P``).
        samples: Evaluation samples (batches of one from a DataLoader, or plain samples).
        predict: Maps a sample to its (H, W) float matte in [0, 1].
        metric_names: Metrics to compute; trimap metrics are dropped for samples without a trimap.
        save_dir: Where to write each prediction as ``<stem>.png`` (8-bit), or None.
    """
    result = SplitResult(name)
    collection = None
    for sample in tqdm(samples, desc=f"evaluate {name}", unit="img"):
        stem = str(_first(sample["stem"]))
        pred = predict(sample).float()
        target = _first(sample["alpha"]).to(pred.device)  # float64: see read_mask
        trimap = sample.get("trimap")
        trimap = None if trimap is None else _first(trimap).to(pred.device)
        if collection is None:
            names = [n for n in metric_names if trimap is not None or n not in TRIMAP_METRIC_NAMES]
            collection = matting_metrics(names).to(pred.device)
        values = collection(pred.reshape(target.shape), target, trimap)
        result.per_image[stem] = {k: float(v) for k, v in values.items()}
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            matte = (pred.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy().reshape(target.shape[-2:])
            cv2.imwrite(str(save_dir / f"{stem}.png"), matte)
    if collection is not None:
        result.mean = {k: float(v) for k, v in collection.compute().items()}
    return result


def generalisation_gaps(results: Sequence[SplitResult]) -> dict[str, dict[str, float]]:
    """Each later split minus the first, per metric (P3M-500-NP - P3M-500-P: the paper's gap)."""
    if len(results) < 2:
        return {}
    base = results[0]
    return {
        f"{other.name} - {base.name}": {k: other.mean[k] - base.mean[k] for k in base.mean if k in other.mean}
        for other in results[1:]
    }


def prediction_reader(pred_dir: Path) -> Predictor:
    """A predictor that reads existing mattes: ``pred_dir/<split>/<stem>.png`` or ``pred_dir/<stem>.png``."""
    from src.data.io import read_mask

    def predict(sample: Mapping[str, Any]) -> Tensor:
        stem, split = str(_first(sample["stem"])), str(_first(sample["split"]))
        candidates = [pred_dir / split / f"{stem}.png", pred_dir / f"{stem}.png"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"no prediction for {split}/{stem}: looked for {candidates[0]} and {candidates[1]}"
            )
        matte = read_mask(path, dtype=np.float64)
        expected = tuple(_first(sample["alpha"]).shape[-2:])
        if matte.shape != expected:
            raise ValueError(
                f"{path} is {matte.shape[0]}x{matte.shape[1]} but the ground truth is "
                f"{expected[0]}x{expected[1]}: predictions must have the image's size"
            )
        return torch.from_numpy(matte)

    return predict
