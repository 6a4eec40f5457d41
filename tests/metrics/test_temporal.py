"""The video metrics dtSSD and MESSDdt: hand-computed clips, RobustVideoMatting's formula, the classes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from p3m.metrics import METRIC_CLASSES, DtSSD, MESSDdt, matting_metrics
from p3m.metrics.evaluation import SplitEvaluator, SplitSpec
from p3m.metrics.temporal import dtssd, dtssd_per_frame, messddt, messddt_per_pair


def moving_blob_clip(
    frames: int = 5, size: int = 48, step: float = 2.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A soft disc moving right by ``step`` px per frame, and a prediction with per-frame noise (flicker)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    target, pred = [], []
    for t in range(frames):
        gt = np.clip((10 - np.hypot(yy - size / 2, xx - 14 - step * t)) / 4 + 0.5, 0, 1)
        gt = np.round(gt * 255) / 255
        noise = rng.normal(0, 0.1, gt.shape) * (rng.random(gt.shape) < 0.2)
        target.append(gt)
        pred.append(np.clip(np.round((gt + noise) * 255) / 255, 0, 1))
    return torch.tensor(np.stack(pred)), torch.tensor(np.stack(target))


def rvm_dtssd(pred: np.ndarray, true: np.ndarray) -> float:
    """RobustVideoMatting's evaluate_lr.py rewritten: float32, frame 0 scores 0, x 1e2, mean over frames."""
    scores = [0.0]
    for t in range(1, len(pred)):
        change = (pred[t] - pred[t - 1]) - (true[t] - true[t - 1])
        scores.append(float(np.sqrt((change**2).sum() / true[t].size) * 1e2))
    return float(np.mean(scores))


def test_dtssd_of_a_hand_computed_clip() -> None:
    """One of four pixels switches on at frame 1 and stays: sqrt(1/4) * 100 = 50 at frame 1, 0 elsewhere."""
    pred = torch.zeros(3, 2, 2, dtype=torch.float64)
    pred[1:, 0, 0] = 1.0
    target = torch.zeros_like(pred)
    assert dtssd_per_frame(pred, target).tolist() == [0.0, 50.0, 0.0]
    assert dtssd(pred, target).item() == pytest.approx(50 / 3)
    # the same switch in the ground truth is motion, not flicker
    assert dtssd(pred, pred.clone()).item() == 0.0


def test_dtssd_ignores_a_constant_error_and_an_8bit_clip_reads_as_k_over_255() -> None:
    target = torch.linspace(0, 0.8, 5, dtype=torch.float64).view(5, 1, 1).expand(5, 4, 4)
    assert dtssd(target + 0.1, target).item() == pytest.approx(0.0, abs=1e-12)  # MAD 0.1, no flicker
    as_uint8 = (target * 255).round().to(torch.uint8)
    flicker = as_uint8.clone()
    flicker[1::2] += 51  # +0.2 on odd frames
    expected = (0 + 20 + 20 + 20 + 20) / 5  # |±0.2| * 100 on every pixel of frames 1..4
    assert dtssd(flicker, as_uint8).item() == pytest.approx(expected)
    assert dtssd(flicker[:, None], as_uint8[:, None]).item() == pytest.approx(expected)  # (T, 1, H, W)


def test_dtssd_equals_robust_video_mattings_script() -> None:
    pred, target = moving_blob_clip()
    ours = dtssd(pred, target).item()
    assert ours > 1.0  # the noise flickers
    assert ours == pytest.approx(rvm_dtssd(pred.float().numpy(), target.float().numpy()), rel=1e-5)


def test_messddt_of_a_hand_computed_still_clip() -> None:
    """No motion (flow 0): one of 256 pixels has error 1 in frame 1 only: |0 - 1| / 256 * 1e4 per pair."""
    pred = torch.zeros(3, 16, 16, dtype=torch.float64)
    pred[1, 5, 7] = 1.0
    target = torch.zeros_like(pred)
    pairs = messddt_per_pair(pred, target)
    assert pairs.tolist() == pytest.approx([1e4 / 256, 1e4 / 256])  # switched on, then off
    assert messddt(pred, target).item() == pytest.approx(1e4 / 256)
    assert messddt(pred[:1], target[:1]).item() == 0.0 and dtssd(pred[:1], target[:1]).item() == 0.0


def test_messddt_follows_the_motion_that_dtssd_counts_as_flicker() -> None:
    """An error that travels with the subject is consistent: MESSDdt (flow-compensated) stays near 0,
    dtSSD (pixel by pixel) does not."""
    _, target = moving_blob_clip(frames=4, step=3.0)
    pred = target.clone()
    pred[target > 0.9] -= 0.3  # the disc's core is always 0.3 too low: the error moves with it
    steady, flickering = messddt(pred, target).item(), messddt(*moving_blob_clip(frames=4, step=3.0)).item()
    assert dtssd(pred, target).item() > 3.0
    assert steady < 0.05 * flickering


def test_bad_clips_are_refused_naming_the_argument() -> None:
    with pytest.raises(ValueError, match=r"need the same frames and size"):
        dtssd(torch.zeros(3, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"pred\[1\] must lie in \[0, 1\]"):
        messddt(torch.tensor([[[0.0]], [[2.0]]]).expand(2, 16, 16), torch.zeros(2, 16, 16))


def test_classes_average_clips_and_survive_pickling() -> None:
    clips = [moving_blob_clip(frames=n, seed=n) for n in (3, 4, 5)]
    for cls, fn in ((DtSSD, dtssd), (MESSDdt, messddt)):
        metric = cls()
        assert METRIC_CLASSES[cls.__name__.lower()] is cls and metric.temporal
        metric.update(*clips[0])
        restored = pickle.loads(pickle.dumps(metric))
        for clip in clips[1:]:
            restored.update(*clip)
        expected = np.mean([fn(*clip).item() for clip in clips])
        assert restored.compute().item() == pytest.approx(expected, rel=1e-12)
        assert restored.num_images.item() == 3  # clips
    collection = matting_metrics(["mad", "dtssd"])
    values = collection(*clips[0])
    assert values["dtssd"].item() == pytest.approx(dtssd(*clips[0]).item())


def test_image_splits_refuse_the_video_metrics() -> None:
    with pytest.raises(ValueError, match=r"dtssd: video metric\(s\), scored on clips"):
        SplitEvaluator(SplitSpec("P3M-500-P", "p"), ["sad", "dtssd"])
