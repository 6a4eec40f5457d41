"""Matting metrics of the P3M papers: a functional per-image core and torchmetrics classes."""

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

__all__ = [
    "MAD",
    "METRIC_CLASSES",
    "METRIC_NAMES",
    "MSE",
    "SAD",
    "TRIMAP_METRIC_NAMES",
    "ConnectivityError",
    "GradientError",
    "MADTrimap",
    "MSETrimap",
    "MattingMetricCollection",
    "PerImageMattingMetric",
    "SADBackground",
    "SADForeground",
    "SADTrimap",
    "matting_metrics",
    "register_metric",
]
