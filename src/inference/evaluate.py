"""Score predictions on evaluation splits, per image and on average, as the papers report them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from src.data.io import read_mask
from src.metrics.collection import METRIC_NAMES, TRIMAP_METRIC_NAMES, matting_metrics
from src.metrics.privacy import SADPrivacy, sad_privacy
from src.utils.errors import MissingInputError, SettingError
from src.utils.files import write_image

Predictor = Callable[[Mapping[str, Any]], Tensor]


@dataclass
class SplitResult:
    """Metrics of one evaluation split: the per-image average and every image's values."""

    name: str
    mean: dict[str, float] = field(default_factory=dict)
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)


def unbatch(value: Any) -> Any:
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
        predict: Maps a sample to its (H, W) matte: float in [0, 1] or uint8.
        metric_names: Metrics to compute; trimap metrics are dropped for samples without a trimap.
        save_dir: Where to write each prediction as ``<stem>.png`` (8-bit), or None.
    """
    result = SplitResult(name)
    collection, names = None, [n for n in metric_names if n != "sad_privacy"]
    privacy = SADPrivacy() if "sad_privacy" in metric_names else None  # needs face masks
    for sample in tqdm(samples, desc=f"evaluate {name}", unit="img"):
        stem = str(unbatch(sample["stem"]))
        pred = predict(sample)
        # the ground truth stays float64 (mask / 255, as the official evaluation): Conn's thresholds
        # are compared in float64
        target = unbatch(sample["alpha"]).to(pred.device)
        trimap = sample.get("trimap")
        trimap = None if trimap is None else unbatch(trimap).to(pred.device)
        if collection is None:
            names = [n for n in names if trimap is not None or n not in TRIMAP_METRIC_NAMES]
            collection = matting_metrics(names).to(pred.device)
        values = collection(pred.reshape(target.shape), target, trimap)
        result.per_image[stem] = {k: float(values[k]) for k in names}
        facemask = sample.get("facemask")
        if privacy is not None and facemask is not None:
            facemask = unbatch(facemask).to(pred.device)
            privacy = privacy.to(pred.device)
            privacy.update(pred.reshape(target.shape), target, facemask)
            score = float(sad_privacy(pred.reshape(target.shape), target, facemask))
            if score == score:  # NaN: no face in this image
                result.per_image[stem]["sad_privacy"] = score
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            write_image(save_dir / f"{stem}.png", to_uint8(pred).reshape(target.shape[-2:]))
    if collection is not None:
        means = collection.compute()
        result.mean = {k: float(means[k]) for k in names}
        if privacy is not None and int(privacy.num_images) > 0:
            result.mean["sad_privacy"] = float(privacy.compute())
    return result


def to_uint8(matte: Tensor) -> np.ndarray:
    """A float matte in [0, 1] as the 8-bit array saved to PNG (rounded, as the official ``* 255``)."""
    if matte.dtype == torch.uint8:
        return matte.cpu().numpy()
    return (matte.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def metric_order(results: Sequence[SplitResult]) -> list[str]:
    """Every metric name that occurs in ``results``, in the papers' order."""
    present = {k for r in results for values in (r.mean, *r.per_image.values()) for k in values}
    return [n for n in METRIC_NAMES if n in present] + sorted(present - set(METRIC_NAMES))


def generalisation_gap(other: SplitResult, base: SplitResult) -> dict[str, float]:
    """``other`` minus ``base`` for every metric both report (P3M-500-NP - P3M-500-P: the paper's gap)."""
    return {k: other.mean[k] - base.mean[k] for k in base.mean if k in other.mean}


def generalisation_gaps(results: Sequence[SplitResult]) -> dict[str, dict[str, float]]:
    """Each later split minus the first, keyed ``"<later> - <first>"``."""
    if not results:
        return {}
    base = results[0]
    return {f"{other.name} - {base.name}": generalisation_gap(other, base) for other in results[1:]}


def prediction_reader(pred_dir: Path) -> Predictor:
    """A predictor that reads existing mattes: ``pred_dir/<split>/<stem>.png`` or ``pred_dir/<stem>.png``."""

    def predict(sample: Mapping[str, Any]) -> Tensor:
        stem, split = str(unbatch(sample["stem"])), str(unbatch(sample["split"]))
        candidates = [pred_dir / split / f"{stem}.png", pred_dir / f"{stem}.png"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise MissingInputError(
                f"no prediction for {split}/{stem}: looked for {candidates[0]} and {candidates[1]}"
            )
        matte = read_mask(path, dtype=np.float64)
        expected = tuple(unbatch(sample["alpha"]).shape[-2:])
        if matte.shape != expected:
            raise SettingError(
                f"{path} is {matte.shape[0]}x{matte.shape[1]} but the ground truth is "
                f"{expected[0]}x{expected[1]}: predictions must have the image's size"
            )
        return torch.from_numpy(matte)

    return predict
