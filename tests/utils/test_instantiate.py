"""Loggers built for a resumed run log into the stopped run's W&B run, CSV log and TensorBoard folder."""

from __future__ import annotations

import csv
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from p3m.callbacks.logger_runs import logger_record
from p3m.utils.instantiate import instantiate_loggers


def _config(save_dir: Path, target: str = "lightning.pytorch.loggers.csv_logs.CSVLogger") -> DictConfig:
    return OmegaConf.create({"log": {"_target_": target, "save_dir": str(save_dir), "name": "logs"}})


def test_a_continued_csv_log_keeps_its_rows_and_columns(tmp_path: Path) -> None:
    (first,) = instantiate_loggers(_config(tmp_path / "first"), OmegaConf.create({}))
    assert isinstance(first, CSVLogger)
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.log_metrics({"val/sad": 9.0}, step=1)
    first.save()

    # a fresh run would start version_0 in its own folder; the resumed one continues the first's file
    config = _config(tmp_path / "second")
    (second,) = instantiate_loggers(config, OmegaConf.create({}), continue_runs=[logger_record(first)])
    assert second.log_dir == first.log_dir
    second.log_metrics({"train/loss": 0.5, "lr": 0.1}, step=2)  # a column the first part never had
    second.save()
    with (Path(first.log_dir) / "metrics.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["step"], row["train/loss"], row["val/sad"], row["lr"]) for row in rows] == [
        ("0", "1.0", "", ""),
        ("1", "", "9.0", ""),
        ("2", "0.5", "", "0.1"),
    ]
    assert not (tmp_path / "second").exists()

    # a run folder that was moved away is not made again: the resumed run logs into its own
    gone = {**logger_record(first), "save_dir": str(tmp_path / "moved")}
    (third,) = instantiate_loggers(_config(tmp_path / "third"), OmegaConf.create({}), continue_runs=[gone])
    assert Path(third.log_dir).parent == tmp_path / "third" / "logs" and not (tmp_path / "moved").exists()


def test_a_continued_tensorboard_log_writes_into_the_same_folder(tmp_path: Path) -> None:
    target = "lightning.pytorch.loggers.tensorboard.TensorBoardLogger"
    (first,) = instantiate_loggers(_config(tmp_path / "first", target), OmegaConf.create({}))
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.finalize("success")
    (second,) = instantiate_loggers(
        _config(tmp_path / "second", target), OmegaConf.create({}), continue_runs=[logger_record(first)]
    )
    assert second.log_dir == first.log_dir and second.version == first.version


def test_a_continued_wandb_logger_resumes_the_recorded_run(tmp_path: Path) -> None:
    config = OmegaConf.create(
        {
            "wandb": {
                "_target_": "lightning.pytorch.loggers.wandb.WandbLogger",
                "project": "p3m",
                "save_dir": str(tmp_path),
            }
        }
    )
    record = {
        "class": "lightning.pytorch.loggers.wandb.WandbLogger",
        "save_dir": str(tmp_path / "stopped"),
        "name": "p3m",
        "version": "abc123",
        "run_name": "train-2026-01-01_00-00-00",
    }
    (tmp_path / "stopped").mkdir()
    (logger,) = instantiate_loggers(config, OmegaConf.create({"task_name": "train"}), continue_runs=[record])
    assert isinstance(logger, WandbLogger)  # not started: no run is created here
    assert (logger.version, logger.save_dir) == ("abc123", str(tmp_path / "stopped"))
    assert config.wandb.name == "train-2026-01-01_00-00-00"
