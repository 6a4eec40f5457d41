"""LearningCurve: the points it keeps, what a resumed run gets back, and the picture it draws."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import cv2
import pytest
import torch

from p3m.callbacks.learning_curve import LearningCurve, smoothed


def _trainer(step: int, metrics: dict[str, float] | None = None, sanity: bool = False) -> SimpleNamespace:
    callback_metrics = {k: torch.tensor(v) for k, v in (metrics or {}).items()}
    return SimpleNamespace(global_step=step, callback_metrics=callback_metrics, sanity_checking=sanity)


def test_smoothing_follows_the_trend_without_a_start_bias() -> None:
    assert smoothed([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    trend = smoothed([float(v) for v in range(10, 0, -1)])
    assert trend[0] == 10.0 and all(a > b for a, b in pairwise(trend))


def test_keeps_losses_and_validations_and_draws_them(tmp_path: Path) -> None:
    curve = LearningCurve(dirpath=tmp_path, title="test run")
    curve.on_validation_end(_trainer(0, {"val/p/sad": 99.0}, sanity=True), None)  # not a validation
    for step in range(1, 21):
        curve.on_train_batch_end(_trainer(step), None, {"loss": torch.tensor(5.0 / step)}, None, step)
        if step % 10 == 0:
            curve.on_validation_end(
                _trainer(step, {"val/p/sad": 20.0 / step, "val/np/sad": 30.0 / step}), None
            )
    assert curve.losses[0] == (1, 5.0) and len(curve.losses) == 20
    assert curve.metrics == {"val/p/sad": [(10, 2.0), (20, 1.0)], "val/np/sad": [(10, 3.0), (20, 1.5)]}

    resumed = LearningCurve(dirpath=tmp_path)
    resumed.load_state_dict(curve.state_dict())
    assert resumed.losses == curve.losses and resumed.metrics == curve.metrics

    curve.on_train_end(_trainer(20), None)
    picture = cv2.imread(str(tmp_path / "learning_curve.png"))
    assert picture is not None and picture.shape[1] > picture.shape[0] > 300
