"""Sweeps: an Optuna search (parallel jobs) and a grid multirun, each summarised in its sweep directory."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from omegaconf import DictConfig

import p3m.utils.optuna_seed  # noqa: F401  (registers the sampler seed's resolver, as train.py does)
from p3m.utils.multirun_summary import write_summary
from tests.cli import read_json, run_train_cli
from tests.conftest import tiny_data_overrides


def _sweep_dir(tmp_path: Path) -> Path:
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    return sweep


def _check_jobs(sweep: Path, count: int, objective: str) -> list[dict]:
    """Every job has its own directory with result.json and metrics.json, and they agree."""
    results = []
    for job in range(count):
        result = read_json(sweep / str(job) / "result.json")
        metrics = read_json(sweep / str(job) / "metrics.json")
        assert result["status"] == "completed" and result["job"] == job, result
        assert result["objective"] == pytest.approx(metrics[objective])
        results.append(result)
    assert not (sweep / str(count)).exists()
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == count and all(row["status"] == "completed" for row in rows)
    objectives = [float(row[f"objective ({objective})"]) for row in rows]
    assert objectives == sorted(objectives)  # best (lowest SAD) first
    table = (sweep / "summary.md").read_text()
    assert table.count("| completed |") == count and f"objective ({objective})" in table
    return results


def test_optuna_sweep_config_composes(compose_config: Callable[..., DictConfig]) -> None:
    cfg = compose_config("train", ["hparams_search=p3m_optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.storage is None
    assert cfg.optimized_metric == "val/p/sad" and str(sweeper.direction).endswith("minimize")
    assert {"model.optimizer.lr", "loss.composition", "augmentation", "privacy"} <= set(sweeper.params)
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.callbacks.multirun_summary._target_.endswith("MultirunSummary")


def test_a_continued_study_does_not_repeat_its_first_trials(
    compose_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    overrides = ["hparams_search=p3m_optuna", f"hydra.sweeper.storage={storage}"]

    def first_proposal() -> dict[str, float]:
        """What the composed sampler proposes next for the stored study (as the sweeper builds it)."""
        seed = compose_config("train", overrides).hydra.sweeper.sampler.seed
        study = optuna.create_study(
            study_name="train",
            storage=storage,
            sampler=optuna.samplers.TPESampler(seed=seed),
            load_if_exists=True,
        )
        trial = study.ask()
        params = {"lr": trial.suggest_float("lr", 1e-6, 1e-4, log=True), "w": trial.suggest_float("w", 0, 5)}
        study.tell(trial, 1.0)
        return params

    assert compose_config("train", ["hparams_search=p3m_optuna"]).hydra.sweeper.sampler.seed == 1234
    first = first_proposal()  # a new study: the configured seed
    assert compose_config("train", overrides).hydra.sweeper.sampler.seed == 1235  # one trial stored
    assert first_proposal() != first  # the continued study explores a new point


@pytest.mark.slow
def test_optuna_sweep_of_three_trials(tiny_synthetic: Path, tmp_path: Path) -> None:
    args = [
        "hparams_search=p3m_optuna",  # lr, loss weights, augmentation, privacy; minimises val/p/sad
        *tiny_data_overrides(tiny_synthetic),
        "backbone=smoke",
        # DataLoader worker processes inside joblib's worker processes (debug=fdr would turn them off)
        "data.num_workers=1",
        "debug=limit",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
        "callbacks=none",  # no checkpoint files to write
        "logger=csv",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=2",  # Optuna proposes 2 trials at a time ...
        "hydra/launcher=parallel",  # ... and joblib runs them side by side
        f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}",  # the pinned sqlalchemy/alembic work
    ]
    result = run_train_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep = _sweep_dir(tmp_path)
    jobs = _check_jobs(sweep, 3, "val/p/sad")
    keys = {override.split("=")[0] for override in jobs[0]["overrides"]}
    assert {"model.optimizer.lr", "loss.fusion_alpha", "augmentation", "privacy"} <= keys
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(job["objective"] for job in jobs))
    study = optuna.load_study(study_name="train", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.value for t in study.trials] == pytest.approx([job["objective"] for job in jobs])


@pytest.mark.slow
def test_grid_multirun(tiny_synthetic: Path, tmp_path: Path) -> None:
    args = [
        "-m",
        "loss=paper,no_composition",
        *tiny_data_overrides(tiny_synthetic),
        "backbone=smoke",
        "debug=fdr",
        "+optimized_metric=val/p/sad",  # fdr has no checkpoint callback whose monitor would be returned
    ]
    result = run_train_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _check_jobs(_sweep_dir(tmp_path), 2, "val/p/sad")
    losses = [o.split("=")[1] for job in jobs for o in job["overrides"] if o.startswith("loss=")]
    assert sorted(losses) == ["no_composition", "paper"]


def test_summary_lists_failed_runs_last(tmp_path: Path) -> None:
    for job, (status, objective, error) in enumerate(
        [("completed", 2.0, None), ("failed", None, "FloatingPointError: nan"), ("completed", 1.0, None)]
    ):
        folder = tmp_path / str(job)
        folder.mkdir()
        result = {
            "job": job,
            "overrides": [f"loss=v{job}"],
            "status": status,
            "objective": objective,
            "error": error,
        }
        (folder / "result.json").write_text(json.dumps(result))
        if objective is not None:
            (folder / "metrics.json").write_text(
                json.dumps({"val/p/sad": objective, "val/np/sad": objective + 1})
            )
    csv_path, md_path = write_summary(tmp_path, metrics=["val/np/sad"], objective="val/p/sad")
    rows = list(csv.DictReader(csv_path.open()))
    assert [row["job"] for row in rows] == ["2", "0", "1"] and rows[0]["loss"] == "v2"
    assert rows[0]["val/np/sad"] == "2.0" and rows[2]["error"] == "FloatingPointError: nan"
    table = md_path.read_text()
    assert (
        "| loss | objective (val/p/sad) | val/np/sad |" in table and "- 1: FloatingPointError: nan" in table
    )
