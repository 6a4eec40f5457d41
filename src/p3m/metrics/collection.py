"""The standard set of matting metrics as one MetricCollection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor
from torchmetrics import MetricCollection

from p3m.metrics.functional import prepare_inputs
from p3m.metrics.matting import METRIC_CLASSES

#: The papers' ten metrics, in the order their tables use (every registered metric: METRIC_CLASSES).
METRIC_NAMES: tuple[str, ...] = (
    "sad",
    "mse",
    "mad",
    "grad",
    "conn",
    "sad_t",
    "mse_t",
    "mad_t",
    "sad_fg",
    "sad_bg",
)
#: The metrics of those that need a trimap.
TRIMAP_METRIC_NAMES: tuple[str, ...] = tuple(n for n in METRIC_NAMES if METRIC_CLASSES[n].needs_trimap)


class MattingMetricCollection(MetricCollection):
    """A MetricCollection that validates and converts the inputs once for all its matting metrics.

    ``update(pred, target, trimap=None)`` and ``forward`` take the same inputs as each metric.
    """

    def update(  # type: ignore[override]  # the metrics' update, not ModuleDict's
        self, pred: Tensor, target: Tensor, trimap: Tensor | None = None
    ) -> None:
        """Update every metric with one batch (inputs converted to float64 once)."""
        super().update(*prepare_inputs(pred, target, trimap))

    def forward(self, pred: Tensor, target: Tensor, trimap: Tensor | None = None) -> dict[str, Any]:
        """Update every metric and return the batch's values."""
        return super().forward(*prepare_inputs(pred, target, trimap))


def matting_metrics(names: Sequence[str] | None = None, prefix: str | None = None) -> MattingMetricCollection:
    """The standard matting metrics (or a subset) as one collection, keyed by canonical name.

    ``compute_groups`` is off: torchmetrics would otherwise merge metrics whose states happen to be
    equal after the first update (e.g. ``sad_fg`` and ``sad_bg`` both 0 on a perfect first image)
    and from then on update only one of them.

    Args:
        names: Registered metrics to include (:data:`~p3m.metrics.matting.METRIC_CLASSES`); the
            papers' ten (:data:`METRIC_NAMES`) by default.
        prefix: Prepended to every key of ``compute()``, e.g. ``"val/p/"``.

    Returns:
        A :class:`MattingMetricCollection`.
    """
    names = list(METRIC_NAMES if names is None else names)
    unknown = [n for n in names if n not in METRIC_CLASSES]
    if unknown:
        raise ValueError(f"unknown matting metric(s) {unknown}; choose from {list(METRIC_CLASSES)}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"matting metric(s) listed twice: {duplicates}")
    if not names:
        raise ValueError(f"no matting metric selected; choose from {list(METRIC_CLASSES)}")
    return MattingMetricCollection(
        {name: METRIC_CLASSES[name]() for name in names}, prefix=prefix, compute_groups=False
    )
