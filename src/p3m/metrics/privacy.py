"""SAD inside the face: the matting error where privacy protection changes the image.

``sad_privacy`` (key ``sad_privacy``) is our measure, not one of the papers' ten: per image, the sum
of ``|pred - alpha|`` over the face-mask pixels (``facemask > 0.5`` on the 0..1 scale; uint8 masks
are read as k / 255, so 128..255 is face), divided by 1000 like the papers' SAD, then averaged over
the images that have at least one face pixel. Images without a face (back views, turned-away
heads) are not counted, so they do not pull the mean towards 0; a split without any face scores NaN.

It is reported for every split that has face masks (P3M-500-P and its re-obfuscated variants) and
can drive checkpointing: ``callbacks.model_checkpoint.monitor=val/p/sad_privacy``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from p3m.metrics.functional import SAD_SCALE, prepare_inputs
from p3m.metrics.matting import PerImageMattingMetric

FACE_THRESHOLD = 0.5  # on the 0..1 scale: a face mask pixel above it counts as face


def _face_pixels(facemask: Tensor, shape: torch.Size) -> Tensor:
    """(N, H, W) bool face pixels from a bool, uint8 (0..255) or float (0..1) mask of the alphas' shape."""
    if not isinstance(facemask, Tensor):
        raise TypeError(f"facemask must be a torch.Tensor, got {type(facemask).__name__}")
    mask = facemask
    if mask.ndim == 2:
        mask = mask[None]
    elif mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.shape != shape:
        raise ValueError(
            f"facemask has shape {tuple(facemask.shape)}; it must match the alphas, (N, H, W) = "
            f"{tuple(shape)} (or (N, 1, H, W) / (H, W))"
        )
    if mask.dtype == torch.bool:
        return mask
    if mask.dtype == torch.uint8:
        return mask.to(torch.float64) / 255.0 > FACE_THRESHOLD
    if not mask.is_floating_point():
        raise TypeError(f"facemask has dtype {mask.dtype}; expected bool, uint8 (0..255) or float (0..1)")
    if bool((mask > 1).any()) or bool((mask < 0).any()):
        raise ValueError(
            "facemask must lie in [0, 1] (float) or be uint8 0..255; divide a 0..255 float mask by 255"
        )
    return mask > FACE_THRESHOLD


def sad_privacy(pred: Tensor, target: Tensor, facemask: Tensor) -> Tensor:
    """Per-image SAD / 1000 inside the face mask; NaN for an image without face pixels.

    Args:
        pred: predicted alpha, (N, 1, H, W), (N, H, W) or (H, W), float in [0, 1] or uint8.
        target: ground-truth alpha, same layout and range.
        facemask: face mask of the same shape: bool, uint8 0..255 or float 0..1 (> 0.5 is face).

    Returns:
        float64 scores, shape (N,) (0-dim for an (H, W) input).
    """
    single = isinstance(pred, Tensor) and pred.ndim == 2
    p, t, _ = prepare_inputs(pred, target)
    face = _face_pixels(facemask.to(p.device), p.shape)
    scores = ((p - t).abs() * face).sum(dim=(-2, -1)) / SAD_SCALE
    scores = torch.where(face.any(dim=(-2, -1)), scores, torch.full_like(scores, float("nan")))
    return scores[0] if single else scores


class SADPrivacy(PerImageMattingMetric):
    """Mean over images with a face of SAD / 1000 inside the face mask (see the module docstring).

    ``update(pred, target, facemask)``; the states of :class:`PerImageMattingMetric` (a float64
    score sum and an image count, reduced with ``"sum"`` across processes) count faces only.
    """

    is_differentiable = True
    score_fn = staticmethod(sad_privacy)

    def update(self, pred: Tensor, target: Tensor, facemask: Tensor) -> None:  # type: ignore[override]  # a face mask, not a trimap
        """Add the scores of the images of a batch that have a face.

        Args:
            pred: predicted alpha, (N, 1, H, W), (N, H, W) or (H, W), float in [0, 1] or uint8.
            target: ground-truth alpha, same layout and range.
            facemask: face mask of the same shape (bool, uint8 0..255 or float 0..1).
        """
        scores = sad_privacy(pred, target, facemask).reshape(-1)
        counted = ~torch.isnan(scores)
        self.score_sum += scores[counted].sum().to(self.score_sum.dtype)
        self.num_images += counted.sum()
