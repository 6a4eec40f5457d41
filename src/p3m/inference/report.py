"""Write evaluation results: metrics.json, a per-image CSV, a printed table and a W&B table."""

from __future__ import annotations

import csv
import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchmetrics
from lightning.pytorch.loggers import Logger
from rich.console import Console
from rich.table import Table

import p3m
from p3m.metrics.evaluation import SplitResult, metric_order

RESERVED_KEYS = ("gap", "meta")


def results_document(
    results: Sequence[SplitResult], gaps: Mapping[str, Mapping[str, float]], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """``{split: {"mean": ..., "per_image": ...}, ..., "gap": {"test/np_minus_p": {...}}, "meta": {...}}``.

    The gap keys are those of the logs without the metric: ``test/np_minus_p/sad`` is
    ``doc["gap"]["test/np_minus_p"]["sad"]``.
    """
    clashes = [r.name for r in results if r.name in RESERVED_KEYS]
    if clashes:
        raise ValueError(
            f"evaluation split(s) named {clashes}: rename them in data.eval_splits (reserved keys)"
        )
    doc: dict[str, Any] = {r.name: {"mean": r.mean, "per_image": r.per_image} for r in results}
    doc["gap"] = {key: dict(values) for key, values in gaps.items()}
    doc["meta"] = dict(meta)
    return doc


def write_reports(results: Sequence[SplitResult], doc: Mapping[str, Any], out_dir: Path) -> None:
    """Write ``doc`` as ``metrics.json`` and the per-image values as ``per_image.csv`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(doc, indent=2))
    names = metric_order(results)
    with (out_dir / "per_image.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["split", "stem", *names])
        for r in results:
            for stem, values in r.per_image.items():
                writer.writerow([r.name, stem, *(values.get(n, "") for n in names)])


def log_per_image_table(loggers: Sequence[Logger], results: Sequence[SplitResult]) -> None:
    """Give loggers that take tables (W&B) the per-image values as the table ``test/per_image``."""
    names = metric_order(results)
    columns = ["split", "stem", *names]
    rows = [[r.name, stem, *(v.get(n) for n in names)] for r in results for stem, v in r.per_image.items()]
    for logger in loggers:
        if hasattr(logger, "log_table"):  # WandbLogger
            logger.log_table(key="test/per_image", columns=columns, data=rows)


def print_table(
    results: Sequence[SplitResult],
    gaps: Mapping[str, Mapping[str, float]],
    console: Console | None = None,
    items: str = "images",
) -> None:
    """Print the per-split means and the gaps, one row per metric (fits a terminal of 80 columns).

    ``items`` names what the splits hold (``clips`` for the video evaluation).
    """
    table = Table(title=f"P3M evaluation (per-{items[:-1]} means)")
    table.add_column("metric")
    for label in [r.name for r in results] + list(gaps):
        table.add_column(label, justify="right")
    table.add_row(items, *(str(len(r.per_image)) for r in results), *("" for _ in gaps))
    for name in metric_order(results):
        values = [r.mean.get(name) for r in results] + [gap.get(name) for gap in gaps.values()]
        table.add_row(name, *(_fmt(v) for v in values))
    (console or Console()).print(table)


def _fmt(value: float | None) -> str:
    """Four decimals; blank where a split has no such metric (e.g. trimap metrics without trimaps)."""
    return "" if value is None else f"{value:.4f}"


def software_versions() -> dict[str, str]:
    """The versions a metrics.json records: the numbers depend on them."""
    return {
        "p3m": p3m.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchmetrics": torchmetrics.__version__,
        "numpy": np.__version__,
    }
