"""Data: reading (io), layout discovery (layout), online trimaps (trimap), training pipelines
(transforms), datasets, the Lightning datamodule, synthetic data and fg/bg estimation.

``from p3m.data import P3M10kDataModule`` works, but is resolved lazily so that light modules
(``p3m.data.io``, ``p3m.data.trimap``) do not import Lightning.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "P3M10kDataModule": "p3m.data.datamodule",
    "P3M10kTrainDataset": "p3m.data.datasets",
    "P3M10kEvalDataset": "p3m.data.datasets",
    "P3M10kLayout": "p3m.data.layout",
    "EvalSplit": "p3m.data.layout",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'p3m.data' has no attribute {name!r}")
