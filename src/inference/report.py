"""Write evaluation results: metrics.json, a per-image CSV and a printed table."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from src.inference.evaluate import SplitResult, generalisation_gaps, metric_order


def results_document(results: Sequence[SplitResult], meta: Mapping[str, Any]) -> dict[str, Any]:
    """``{split: {"mean": ..., "per_image": ...}, ..., "gap": {...}, "meta": {...}}``."""
    clashes = [r.name for r in results if r.name in ("gap", "meta")]
    if clashes:
        raise ValueError(
            f"evaluation split(s) named {clashes}: rename them in data.eval_splits (reserved keys)"
        )
    doc: dict[str, Any] = {r.name: {"mean": r.mean, "per_image": r.per_image} for r in results}
    doc["gap"] = generalisation_gaps(results)
    doc["meta"] = dict(meta)
    return doc


def write_reports(results: Sequence[SplitResult], meta: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    """Write ``metrics.json`` and ``per_image.csv`` into ``out_dir``; return the JSON document."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = results_document(results, meta)
    (out_dir / "metrics.json").write_text(json.dumps(doc, indent=2))
    names = metric_order(results)
    with (out_dir / "per_image.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["split", "stem", *names])
        for r in results:
            for stem, values in r.per_image.items():
                writer.writerow([r.name, stem, *(values.get(n, "") for n in names)])
    return doc


def print_table(results: Sequence[SplitResult], console: Console | None = None) -> None:
    """Print the per-split means and the gaps, one row per metric (fits a terminal of 80 columns)."""
    gaps = generalisation_gaps(results)
    table = Table(title="P3M evaluation (per-image means)")
    table.add_column("metric")
    for label in [r.name for r in results] + list(gaps):
        table.add_column(label, justify="right")
    table.add_row("images", *(str(len(r.per_image)) for r in results), *("" for _ in gaps))
    for name in metric_order(results):
        values = [r.mean.get(name) for r in results] + [gap.get(name) for gap in gaps.values()]
        table.add_row(name, *(_fmt(v) for v in values))
    (console or Console()).print(table)


def _fmt(value: float | None) -> str:
    """Four decimals; blank where a split has no such metric (e.g. trimap metrics without trimaps)."""
    return "" if value is None else f"{value:.4f}"
