"""Data: reading (io), layout discovery (layout), online trimaps (trimap), training pipelines
(transforms), datasets, the Lightning datamodule, synthetic data and fg/bg estimation.

``from src.data import P3M10kDataModule`` works, but is resolved lazily so that light modules
(``src.data.io``, ``src.data.trimap``) do not import Lightning.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "P3M10kDataModule": "src.data.datamodule",
    "P3M10kTrainDataset": "src.data.datasets",
    "P3M10kEvalDataset": "src.data.datasets",
    "P3M10kLayout": "src.data.layout",
    "EvalSplit": "src.data.layout",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'src.data' has no attribute {name!r}")
