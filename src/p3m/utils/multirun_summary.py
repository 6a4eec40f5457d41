"""A Hydra callback that collects a multirun into one table: ``summary.csv`` and ``summary.md``.

Registered in ``conf/hydra/default.yaml`` (``hydra.callbacks``), so every sweep gets it, whatever the
sweeper (basic grid, Optuna) or launcher (basic, joblib, SLURM):

- at the end of each job (where the job runs, e.g. on a SLURM node), ``result.json`` in the job's
  directory: its number, overrides, status, the value returned to the sweeper and the error if it
  failed (the final metrics are in ``metrics.json``, written by the train script);
- at the end of the sweep (where it was launched), ``summary.csv`` (every override and every
  metric) and ``summary.md`` (overrides and the chosen metrics), best run first, failed jobs with
  their error line.

A sweeper stops with an exception once a batch had a failed job (Hydra's basic sweeper always,
Optuna's above its ``max_failure_rate``), after the batch's other jobs ran, and Hydra then never
calls ``on_multirun_end``: the summary is written when the launching process exits instead.
"""

from __future__ import annotations

import atexit
import csv
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from p3m.utils.distributed import global_rank
from p3m.utils.errors import UserError

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
METRICS_FILE = "metrics.json"


def job_result(job_return: JobReturn, job_num: int | None) -> dict[str, Any]:
    """What :class:`MultirunSummary` writes to ``result.json`` for one job."""
    completed = job_return.status == JobStatus.COMPLETED
    value = job_return._return_value  # the property re-raises a failed job's exception
    error = None
    if not completed:  # a user error's message names the setting or file; a bug's type is shown too
        error = str(value) if isinstance(value, UserError) else f"{type(value).__name__}: {value}"
    return {
        "job": job_num,
        "overrides": list(job_return.overrides or []),
        "status": "completed" if completed else "failed",
        "objective": _as_float(value) if completed else None,
        "error": error,
    }


def _as_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def collect_sweep(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory of a sweep that has ``result.json``: result plus ``metrics.json``."""
    rows = []
    for result_path in sorted(sweep_dir.glob(f"*/{RESULT_FILE}"), key=lambda p: _job_order(p.parent.name)):
        row = json.loads(result_path.read_text())
        metrics_path = result_path.parent / METRICS_FILE
        row["metrics"] = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        row["dir"] = result_path.parent.name
        rows.append(row)
    return rows


def _job_order(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)


def _override_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for row in rows:
        for override in row["overrides"]:
            key = override.split("=", 1)[0]
            if key not in keys:
                keys.append(key)
    return keys


def _overrides_dict(overrides: Sequence[str]) -> dict[str, str]:
    return {key: value for key, _, value in (o.partition("=") for o in overrides)}


def _sort_key(row: dict[str, Any], maximize: bool) -> tuple[int, float]:
    value = row.get("objective")
    if value is None or math.isnan(value):
        return (1, 0.0)
    return (0, -value if maximize else value)


def write_summary(
    sweep_dir: Path, metrics: Sequence[str] = (), objective: str | None = None, maximize: bool = False
) -> tuple[Path, Path] | None:
    """Write ``summary.csv`` and ``summary.md`` for the jobs of ``sweep_dir``; None if it has none.

    Args:
        sweep_dir: The sweep directory (``hydra.sweep.dir``).
        metrics: Metric columns of the markdown table (the CSV has every metric).
        objective: Name of the value the jobs returned (e.g. ``val/p/sad``), for the headers.
        maximize: Sort the best (largest) objective first instead of the smallest.
    """
    rows = collect_sweep(sweep_dir)
    if not rows:
        return None
    rows.sort(key=lambda r: _sort_key(r, maximize))
    override_keys = _override_columns(rows)
    metric_keys = sorted({k for row in rows for k in row["metrics"]})
    objective_header = f"objective ({objective})" if objective else "objective"

    csv_path = sweep_dir / "summary.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["job", "status", *override_keys, objective_header, *metric_keys, "error"])
        for row in rows:
            overrides = _overrides_dict(row["overrides"])
            writer.writerow(
                [
                    row["dir"],
                    row["status"],
                    *[overrides.get(k, "") for k in override_keys],
                    "" if row["objective"] is None else row["objective"],
                    *[row["metrics"].get(k, "") for k in metric_keys],
                    row["error"] or "",
                ]
            )

    shown = [m for m in metrics if m in metric_keys and m != objective]
    # the table shows what the sweep varied; overrides shared by every run are listed once above it
    per_row = [_overrides_dict(row["overrides"]) for row in rows]
    varied = [k for k in override_keys if len({o.get(k) for o in per_row}) > 1]
    shared = [f"{k}={per_row[0][k]}" for k in override_keys if k not in varied and k in per_row[0]]
    header = ["job", "status", *varied, objective_header, *shown]
    lines = [f"# Sweep {sweep_dir.name}: {len(rows)} runs, best first", ""]
    if shared:
        lines += ["Every run: `" + " ".join(shared) + "`", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, overrides in zip(rows, per_row, strict=True):
        cells = [
            row["dir"],
            row["status"],
            *[_fmt_override(overrides.get(k, "")) for k in varied],
            _fmt(row["objective"]),
            *[_fmt(row["metrics"].get(m)) for m in shown],
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    failed = [row for row in rows if row["error"]]
    if failed:
        lines += ["", "Failed runs:", ""] + [f"- {row['dir']}: {row['error']}" for row in failed]
    md_path = sweep_dir / "summary.md"
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def _fmt_override(value: str) -> str:
    """Sampled floats (``4.2307347444636775e-06``) shortened for reading; other values as given."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if value.lstrip("-").isdigit() else f"{number:.4g}"


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class MultirunSummary(Callback):
    """Write each job's ``result.json`` and the sweep's ``summary.csv`` / ``summary.md``.

    Args:
        metrics: Metric columns of ``summary.md`` (the CSV has all of them).
    """

    def __init__(self, metrics: Sequence[str] = ()) -> None:
        self.metrics = list(metrics)
        self._open_sweep: DictConfig | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Make sure the sweep gets a summary even if it stops on a failed job (see the module docstring)."""
        self._open_sweep = config
        atexit.register(self._summarise_open_sweep)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """Record the job's overrides, status and objective next to its outputs (multirun only)."""
        hydra_cfg = config.get("hydra")
        if hydra_cfg is None or hydra_cfg.get("mode") != RunMode.MULTIRUN:
            return
        if global_rank() != 0:  # under SLURM every rank of a job ends the job
            return
        output_dir = Path(hydra_cfg.runtime.output_dir)
        result = job_result(job_return, hydra_cfg.job.get("num"))
        (output_dir / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Summarise every job of the sweep directory."""
        atexit.unregister(self._summarise_open_sweep)
        self._open_sweep = None
        self._summarise(config)

    def _summarise_open_sweep(self) -> None:
        if self._open_sweep is not None:
            self._summarise(self._open_sweep)
            self._open_sweep = None

    def _summarise(self, config: DictConfig) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        objective = OmegaConf.select(config, "optimized_metric") or OmegaConf.select(
            config, "callbacks.model_checkpoint.monitor"
        )
        direction = OmegaConf.select(config, "hydra.sweeper.direction", default="minimize")
        maximize = str(direction).lower().endswith("maximize")
        written = write_summary(sweep_dir, self.metrics, objective=objective, maximize=maximize)
        if written:
            log.info("Sweep summary: %s, %s", *written)
        else:
            log.warning("Sweep summary: no job wrote %s under %s", RESULT_FILE, sweep_dir)
