"""Mattes for evaluation that come from files: ``pred_dir=`` scores other methods' predictions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from p3m.data.io import read_mask
from p3m.utils.errors import MissingInputError, SettingError

MatteSource = Callable[[Mapping[str, Any]], Tensor]


def prediction_reader(pred_dir: Path) -> MatteSource:
    """A predictor that reads existing mattes: ``pred_dir/<split>/<stem>.png`` or ``pred_dir/<stem>.png``.

    It takes an evaluation batch of one image (``stem``, ``split``, ``alpha``) and returns the matte
    as float64 in [0, 1], checked against the ground truth's size.
    """

    def predict(batch: Mapping[str, Any]) -> Tensor:
        stem, split = str(batch["stem"][0]), str(batch["split"][0])
        candidates = [pred_dir / split / f"{stem}.png", pred_dir / f"{stem}.png"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise MissingInputError(
                f"no prediction for {split}/{stem}: looked for {candidates[0]} and {candidates[1]}"
            )
        matte = read_mask(path, dtype=np.float64)
        expected = tuple(batch["alpha"].shape[-2:])
        if matte.shape != expected:
            raise SettingError(
                f"{path} is {matte.shape[0]}x{matte.shape[1]} but the ground truth is "
                f"{expected[0]}x{expected[1]}: predictions must have the image's size"
            )
        return torch.from_numpy(matte)

    return predict
