"""Write evaluation results: metrics.json, a per-image CSV and a printed table."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from src.inference.evaluate import SplitResult, generalisation_gaps


def results_document(results: Sequence[SplitResult], meta: Mapping[str, Any]) -> dict[str, Any]:
    """``{split: {"mean": ..., "per_image": ...}, ..., "gap": {...}, "meta": {...}}``."""
    doc: dict[str, Any] = {r.name: {"mean": r.mean, "per_image": r.per_image} for r in results}
    doc["gap"] = generalisation_gaps(results)
    doc["meta"] = dict(meta)
    return doc


def write_reports(results: Sequence[SplitResult], meta: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    """Write ``metrics.json`` and ``per_image.csv`` into ``out_dir``; return the JSON document."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = results_document(results, meta)
    (out_dir / "metrics.json").write_text(json.dumps(doc, indent=2))
    names = sorted({k for r in results for v in r.per_image.values() for k in v})
    with (out_dir / "per_image.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["split", "stem", *names])
        for r in results:
            for stem, values in r.per_image.items():
                writer.writerow([r.name, stem, *(values.get(n, "") for n in names)])
    return doc


def print_table(results: Sequence[SplitResult], console: Console | None = None) -> None:
    """Print the per-split means (and the gaps) as a table."""
    names = [n for n in dict.fromkeys(k for r in results for k in r.mean)]
    table = Table(title="P3M evaluation (per-image means)")
    table.add_column("split")
    table.add_column("images", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    for r in results:
        table.add_row(r.name, str(len(r.per_image)), *(_fmt(r.mean.get(n)) for n in names))
    for label, gap in generalisation_gaps(results).items():
        table.add_row(label, "", *(_fmt(gap.get(n)) for n in names))
    (console or Console()).print(table)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
