"""Temporal-consistency errors of video mattes: dtSSD and MESSDdt, a functional core and metric classes.

A clip is a ``(T, H, W)`` (or ``(T, 1, H, W)``) tensor of consecutive frames' alphas, float in [0, 1]
or uint8 (k / 255), as for the image metrics. Frames are compared pair by pair, each pair converted
to float64 on its own, so an 8-bit clip is never copied whole into float64.

- ``dtssd`` (key ``dtssd``): the evaluation scripts of RobustVideoMatting (``evaluate_lr.py``) and
  MatAnyone (``eval_yt_lr.py``), whole frame. For frames t >= 1::

      dtSSD_t = sqrt( sum_x ((p_t - p_{t-1}) - (g_t - g_{t-1}))**2 / (H * W) ) * 100

  and frame 0 scores 0. A clip's score is the mean over its T frames (frame 0 included, as their
  spreadsheets average it: ``sum_t dtSSD_t / T``). **Scale: x 1e2**, as the video-matting papers report it.
- ``messddt`` (key ``messddt``): the motion-compensated error of Erofeev et al. (BMVC 2015), as
  MaGGIe's evaluation computes it. With e_t = (p_t - g_t)**2 and v_t the optical flow from g_t to
  g_{t+1}::

      MESSDdt_t = sum_x | e_t(x) - e_{t+1}(x + v_t(x)) | / (H * W) * 1e4

  for t = 0 .. T-2, ``x + v_t(x)`` rounded to the nearest pixel and clamped to the frame. A clip's
  score is the mean over its T-1 pairs. **Scale: x 1e4.** The flow is OpenCV's DIS (Kroeger et al.
  2016, preset MEDIUM) on the 8-bit ground-truth alphas: the motion of the subject, known to every
  evaluation that has the ground truth (no frames needed). DIS rather than Farneback: on the video
  benchmark, where the true motion is known, it follows the subject's edges more closely and faster
  (docs/video.md gives the measurement).

A clip with a single frame scores 0 for both. The metric classes average the clip scores over clips:
one ``update`` is one clip.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from p3m.metrics.functional import _as_alpha, _as_images
from p3m.metrics.matting import PerImageMattingMetric, register_metric

DTSSD_SCALE = 1e2
MESSDDT_SCALE = 1e4


def _clips(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(T, H, W) views of two clips of the same shape (values are checked frame by frame)."""
    p, g = _as_images(pred, "pred"), _as_images(target, "target")
    if p.shape != g.shape:
        raise ValueError(
            f"pred has shape {tuple(p.shape)} and target {tuple(g.shape)} as (T, H, W): "
            "a clip's prediction and ground truth need the same frames and size"
        )
    return p, g


def _frames(pred: Tensor, target: Tensor, t: int) -> tuple[Tensor, Tensor]:
    """Frame t of both clips as float64 alphas in [0, 1]."""
    return _as_alpha(pred[t], f"pred[{t}]")[0], _as_alpha(target[t], f"target[{t}]")[0]


def dtssd_per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """``(T,)`` dtSSD of each frame (x 1e2); frame 0 scores 0, as in RobustVideoMatting's script."""
    p, g = _clips(pred, target)
    scores = torch.zeros(p.shape[0], dtype=torch.float64, device=p.device)
    previous = _frames(p, g, 0)
    for t in range(1, p.shape[0]):
        current = _frames(p, g, t)
        change = (current[0] - previous[0]) - (current[1] - previous[1])
        scores[t] = change.square_().mean().sqrt() * DTSSD_SCALE
        previous = current
    return scores


def dtssd(pred: Tensor, target: Tensor) -> Tensor:
    """dtSSD of one clip (x 1e2): the mean of :func:`dtssd_per_frame` over its T frames (0-dim)."""
    return dtssd_per_frame(pred, target).mean()


def alpha_flow(alpha: Tensor, next_alpha: Tensor) -> np.ndarray:
    """``(H, W, 2)`` float32 DIS flow (x, y) from one alpha frame to the next, on their 8-bit values."""
    first, second = ((a * 255).round().to(torch.uint8).cpu().numpy() for a in (alpha, next_alpha))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]  # not in stubs
    return dis.calc(first, second, None)


def messddt_per_pair(pred: Tensor, target: Tensor) -> Tensor:
    """``(T-1,)`` MESSDdt of each pair of consecutive frames (x 1e4), see the module docstring."""
    p, g = _clips(pred, target)
    height, width = p.shape[-2:]
    scores = torch.zeros(max(p.shape[0] - 1, 0), dtype=torch.float64, device=p.device)
    ys, xs = np.mgrid[0:height, 0:width]
    previous = _frames(p, g, 0) if p.shape[0] else None
    for t in range(p.shape[0] - 1):
        assert previous is not None
        current = _frames(p, g, t + 1)
        flow = alpha_flow(previous[1], current[1])
        rows = np.clip(np.rint(ys + flow[..., 1]), 0, height - 1).astype(np.int64)
        cols = np.clip(np.rint(xs + flow[..., 0]), 0, width - 1).astype(np.int64)
        index = torch.from_numpy(rows * width + cols).to(p.device)
        error, next_error = (previous[0] - previous[1]).square_(), (current[0] - current[1]).square_()
        warped = next_error.flatten().take(index.flatten()).view(height, width)
        scores[t] = (error - warped).abs_().mean() * MESSDDT_SCALE
        previous = current
    return scores


def messddt(pred: Tensor, target: Tensor) -> Tensor:
    """MESSDdt of one clip (x 1e4): the mean over its frame pairs (0 for a single frame; 0-dim)."""
    pairs = messddt_per_pair(pred, target)
    return pairs.mean() if pairs.numel() else pairs.new_zeros(())


class PerClipMattingMetric(PerImageMattingMetric):
    """Base class of the temporal metrics: each ``update`` is one clip, ``compute`` the mean over clips.

    ``update(pred, target)`` takes one clip's alphas, ``(T, H, W)`` or ``(T, 1, H, W)``, float in
    [0, 1] or uint8 (the leading axis is time, not a batch of images); the inherited ``num_images``
    state counts clips. States are sums, reduced with ``"sum"`` across processes, as for the image
    metrics: under DDP each rank scores its own clips and ``compute`` gives the mean over all of them.
    """

    temporal = True


@register_metric("dtssd")
class DtSSD(PerClipMattingMetric):
    """dtSSD x 1e2 (RobustVideoMatting's and MatAnyone's evaluation, whole frame), mean over clips."""

    score_fn = staticmethod(dtssd)


@register_metric("messddt")
class MESSDdt(PerClipMattingMetric):
    """MESSDdt x 1e4 (Erofeev et al. 2015 as MaGGIe computes it, DIS flow), mean over clips."""

    score_fn = staticmethod(messddt)
