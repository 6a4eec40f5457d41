"""Matting metrics of the P3M papers and the video metrics: functional cores and torchmetrics classes."""

from p3m.metrics.collection import (
    METRIC_NAMES,
    TRIMAP_METRIC_NAMES,
    MattingMetricCollection,
    matting_metrics,
)
from p3m.metrics.matting import (
    MAD,
    METRIC_CLASSES,
    MSE,
    SAD,
    ConnectivityError,
    GradientError,
    MADTrimap,
    MSETrimap,
    PerImageMattingMetric,
    SADBackground,
    SADForeground,
    SADTrimap,
    register_metric,
)
from p3m.metrics.temporal import DtSSD, MESSDdt, PerClipMattingMetric

__all__ = [
    "MAD",
    "METRIC_CLASSES",
    "METRIC_NAMES",
    "MSE",
    "SAD",
    "TRIMAP_METRIC_NAMES",
    "ConnectivityError",
    "DtSSD",
    "GradientError",
    "MADTrimap",
    "MESSDdt",
    "MSETrimap",
    "MattingMetricCollection",
    "PerClipMattingMetric",
    "PerImageMattingMetric",
    "SADBackground",
    "SADForeground",
    "SADTrimap",
    "matting_metrics",
    "register_metric",
]
