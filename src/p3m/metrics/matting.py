"""torchmetrics classes for the ten matting errors of the P3M papers, averaged per image.

Each class is a thin wrapper around one function of :mod:`p3m.metrics.functional` (see there for the
exact conventions and scales). States are a float64 score sum and an image count, both reduced with
``"sum"`` across processes, so ``compute()`` is the mean over images, as the papers report.

``update(pred, target, trimap=None)`` takes alphas of shape (N, 1, H, W), (N, H, W) or (H, W), float in
[0, 1] (or uint8, read as k / 255), and a trimap of the same shape with values 0/128/255; the trimap
is required by the ``*_trimap`` and fg/bg metrics and ignored by the others. Tensors stay on their
device; only Conn's component labelling runs on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric

from p3m.metrics import functional as F

#: Every matting metric by canonical name (the key of logs and tables), in registration order.
METRIC_CLASSES: dict[str, type[PerImageMattingMetric]] = {}


def register_metric(name: str) -> Callable[[type[PerImageMattingMetric]], type[PerImageMattingMetric]]:
    """Class decorator: make a :class:`PerImageMattingMetric` available as ``name`` (in
    ``model.val_metrics``, ``eval.py metrics=``, :func:`p3m.metrics.matting_metrics`)."""

    def register(cls: type[PerImageMattingMetric]) -> type[PerImageMattingMetric]:
        if METRIC_CLASSES.get(name, cls) is not cls:
            raise ValueError(
                f"a matting metric named {name!r} is already registered ({METRIC_CLASSES[name]})"
            )
        METRIC_CLASSES[name] = cls
        return cls

    return register


class PerImageMattingMetric(Metric):
    """Base class: mean over images of a per-image matting error.

    Subclasses set ``score_fn`` (a function of :mod:`p3m.metrics.functional`) and whether it
    needs a trimap.
    """

    # torchmetrics declares these as (optional) attributes of every Metric: same types here
    higher_is_better: bool | None = False
    is_differentiable: bool | None = False
    full_state_update: bool | None = False
    needs_trimap: ClassVar[bool] = False
    temporal: ClassVar[bool] = False
    """True for the video metrics (:mod:`p3m.metrics.temporal`): an update is one clip, not a batch."""
    score_fn: ClassVar[Callable[..., Tensor]]

    score_sum: Tensor
    num_images: Tensor

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("score_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_images", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, trimap: Tensor | None = None) -> None:
        """Add the scores of a batch of images.

        Args:
            pred: Predicted alpha, (N, 1, H, W), (N, H, W) or (H, W), float in [0, 1] or uint8.
            target: Ground-truth alpha, same layout and value range.
            trimap: 0/128/255 trimap of the same shape; required by the trimap and fg/bg metrics.
        """
        fn = type(self).score_fn
        scores = fn(pred, target, trimap) if self.needs_trimap else fn(pred, target)
        self.score_sum += scores.sum().to(self.score_sum.dtype)
        self.num_images += scores.numel()

    def compute(self) -> Tensor:
        """Mean per-image score (NaN before the first update)."""
        return self.score_sum / self.num_images


@register_metric("sad")
class SAD(PerImageMattingMetric):
    """Sum of absolute differences over the whole image / 1000 (official ``SAD``), mean over images."""

    is_differentiable = True
    score_fn = staticmethod(F.sad)


@register_metric("mse")
class MSE(PerImageMattingMetric):
    """Mean squared error over the whole image, sum / (H * W) (official ``MSE``), mean over images."""

    is_differentiable = True
    score_fn = staticmethod(F.mse)


@register_metric("mad")
class MAD(PerImageMattingMetric):
    """Mean absolute difference over the whole image, sum / (H * W) (official ``MAD``), mean over images."""

    is_differentiable = True
    score_fn = staticmethod(F.mad)


@register_metric("grad")
class GradientError(PerImageMattingMetric):
    """Gradient error / 10 (official ``GRAD``: Gaussian derivatives, sigma 1.4, float64), mean over images."""

    score_fn = staticmethod(F.gradient_error)


@register_metric("conn")
class ConnectivityError(PerImageMattingMetric):
    """Connectivity error / 1000 (official ``CONN``, thresholds np.arange(0, 1.1, 0.1)), mean over images.

    The component labelling runs on the CPU (scipy); the rest stays on the input's device.
    """

    score_fn = staticmethod(F.connectivity_error)


@register_metric("sad_t")
class SADTrimap(PerImageMattingMetric):
    """SAD / 1000 with pred forced to the trimap's known values (official ``SAD_TRIMAP``)."""

    is_differentiable = True
    needs_trimap = True
    score_fn = staticmethod(F.sad_trimap)


@register_metric("mse_t")
class MSETrimap(PerImageMattingMetric):
    """Squared error of the trimap-forced pred / #unknown pixels (official ``MSE_TRIMAP``).

    An image without unknown pixels scores its error sum / 1 (0 for a consistent trimap) and warns.
    """

    is_differentiable = True
    needs_trimap = True
    score_fn = staticmethod(F.mse_trimap)


@register_metric("mad_t")
class MADTrimap(PerImageMattingMetric):
    """Absolute error of the trimap-forced pred / #unknown pixels (official ``MAD_TRIMAP``).

    An image without unknown pixels scores its error sum / 1 (0 for a consistent trimap) and warns.
    """

    is_differentiable = True
    needs_trimap = True
    score_fn = staticmethod(F.mad_trimap)


@register_metric("sad_fg")
class SADForeground(PerImageMattingMetric):
    """SAD / 1000 of the unmodified pred over trimap == 255 (official ``SAD_FG``)."""

    is_differentiable = True
    needs_trimap = True
    score_fn = staticmethod(F.sad_foreground)


@register_metric("sad_bg")
class SADBackground(PerImageMattingMetric):
    """SAD / 1000 of the unmodified pred over trimap == 0 (official ``SAD_BG``)."""

    is_differentiable = True
    needs_trimap = True
    score_fn = staticmethod(F.sad_background)
