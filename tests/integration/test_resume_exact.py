"""A pre-empted run ends exactly where an uninterrupted one would: data position, RNG, loggers.

One process with two DataLoader workers trains 2 epochs of 2 batches straight through; a second run
of the same configuration is stopped by SIGTERM four times (mid-epoch 0, during epoch 0's
validation, at the end of epoch 0, mid-epoch 1) and resumed each time with ``ckpt_path=latest``.
The last checkpoints must hold the same weights and optimizer state bit for bit, the runs must log
the same metrics, train on the same samples with the same augmentations, and the pieces must form
one W&B run and one CSV log. Then the same with two processes (DDP on the CPU), and a multirun where
one of two jobs is pre-empted and the sweep is run again.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from p3m.tasks.train import train
from p3m.utils.errors import EXIT_TERMINATED
from p3m.utils.run import task_wrapper
from tests.cli import read_json, run_train_cli
from tests.conftest import REPO_ROOT, TINY_SYNTHETIC, tiny_data_overrides
from tests.integration import wandb_records
from tests.integration.resume_callbacks import read_sample_log, sample_ids

HELPERS = "tests.integration.resume_callbacks"
NUM_TRAIN = TINY_SYNTHETIC["num_train"]

# 2 epochs of 2 batches (4 images, batch 2), 2 validation images per split, last.ckpt only; the smoke
# backbone: what is checked (data position, RNG, optimizer, loggers) is the same for every network
BASE = [
    "backbone=smoke",
    "debug=limit",
    "trainer.deterministic=warn",  # max_unpool2d has no kernel flagged deterministic
    "trainer.num_sanity_val_steps=0",
    "callbacks.model_checkpoint.monitor=null",
    "callbacks.model_checkpoint.save_top_k=0",
    "keep_freed_memory=false",  # the test process runs many fits and forks workers: let it shrink
]


def _stop(epoch: int, batch: int, stage: str, job: int | None = None, rank: int = 0) -> list[str]:
    stop = [f"+callbacks.stop._target_={HELPERS}.SigtermAt", f"+callbacks.stop.epoch={epoch}"]
    stop += [
        f"+callbacks.stop.batch={batch}",
        f"+callbacks.stop.stage={stage}",
        f"+callbacks.stop.rank={rank}",
    ]
    return stop + ([f"+callbacks.stop.job={job}"] if job is not None else [])


def _sample_log(folder: Path) -> list[str]:
    return [f"+callbacks.samples._target_={HELPERS}.SampleLog", f"+callbacks.samples.folder={folder}"]


def _compose(tmp_path: Path, run_dir: Path, overrides: Sequence[str]) -> DictConfig:
    """The train config as Hydra composes it; the run folder is ``run_dir`` (under logs/, latest finds it)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                *overrides,
                f"paths.log_dir={tmp_path / 'logs'}",
                f"paths.output_dir={run_dir}",
                f"paths.work_dir={tmp_path}",
                f"hydra.run.dir={run_dir}",
            ],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    return cfg


def _preempted(cfg: DictConfig) -> None:
    """Run until the SIGTERM: exit status 143, as a shell would see it."""
    with pytest.raises(SystemExit) as stopped:
        task_wrapper(train, saves_on_sigterm=True)(cfg)
    assert stopped.value.code == EXIT_TERMINATED


def _load(path: Path) -> dict[str, Any]:
    # mapped, not read: the test process stays small, and the DataLoader workers it forks with it
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _assert_same_state(expected: dict[str, Any], got: dict[str, Any]) -> None:
    """Bit for bit: epoch, step, weights, the optimizer's moments and step counts, the schedulers."""
    assert (got["epoch"], got["global_step"]) == (expected["epoch"], expected["global_step"])
    assert expected["state_dict"].keys() == got["state_dict"].keys()
    differing = [k for k, v in expected["state_dict"].items() if not torch.equal(v, got["state_dict"][k])]
    assert not differing, f"{len(differing)} tensors differ, e.g. {differing[:3]}"
    (a,), (b,) = expected["optimizer_states"], got["optimizer_states"]
    assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
    for index, moments in a["state"].items():
        for name, value in moments.items():
            assert torch.equal(value, b["state"][index][name]), (index, name)
    assert expected["lr_schedulers"] == got["lr_schedulers"]


def _csv_rows(run_dir: Path) -> list[dict[str, str]]:
    (path,) = run_dir.glob("csv/version_*/metrics.csv")
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))


@pytest.fixture
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_MODE", "offline")


@pytest.fixture
def two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let train.py keep data.num_workers=2 on a machine with fewer CPUs (it caps workers to the CPUs)."""
    monkeypatch.setattr("p3m.utils.distributed.cpu_count", lambda: 8)


def _run(cfg: DictConfig) -> dict[str, Any]:
    """A whole run, as the entry point runs it (W&B is finished at the end: the next run is another one)."""
    return task_wrapper(train, saves_on_sigterm=True)(cfg)


@pytest.mark.slow
@pytest.mark.usefixtures("offline_wandb", "two_workers")
def test_a_run_preempted_four_times_ends_like_an_uninterrupted_one(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    base = [
        *tiny_data_overrides(tiny_synthetic),
        *BASE,
        "data.num_workers=2",
        "logger=many",
    ]  # many: CSV and W&B
    straight_dir = tmp_path / "straight"
    straight = _run(_compose(tmp_path, straight_dir, [*base, *_sample_log(straight_dir / "samples")]))

    runs = tmp_path / "logs" / "train" / "runs"
    pieces = tmp_path / "pieces"  # the sample log of every piece of the pre-empted run
    stops = {"a": (0, 0, "train"), "b": (0, 0, "validation"), "c": (0, 0, "epoch_end"), "d": (1, 0, "train")}
    for name, stop in stops.items():
        resume = ["ckpt_path=latest"] if name != "a" else []
        _preempted(_compose(tmp_path, runs / name, [*base, *resume, *_stop(*stop), *_sample_log(pieces)]))
        saved = _load(runs / name / "checkpoints" / "last.ckpt")
        assert len(saved["data_position"]) == len(saved["rng_states"]) == 1
        assert "combined_loader" not in saved["loops"]["fit_loop"]["state_dict"]  # one owner: data_position
    assert _load(runs / "a" / "checkpoints" / "last.ckpt")["global_step"] == 1  # after the first of 2 batches
    resumed = _run(_compose(tmp_path, runs / "e", [*base, "ckpt_path=latest", *_sample_log(pieces)]))

    _assert_same_state(
        _load(straight_dir / "checkpoints" / "last.ckpt"), _load(runs / "e" / "checkpoints" / "last.ckpt")
    )
    # the learning rate is logged when an epoch starts, which the last piece did not see (the piece
    # before it logged it: the CSV and W&B comparisons below include it)
    assert set(straight) - set(resumed) == {"lr-Adam"} and set(resumed) <= set(straight)
    for name, value in resumed.items():
        assert float(value) == float(straight[name]), name

    # every epoch: the same samples in the same order, each once, with the same augmentations
    expected, got = read_sample_log(straight_dir / "samples"), read_sample_log(pieces)
    assert got == expected
    assert all(sorted(ids) == list(range(NUM_TRAIN)) for ids in sample_ids(got).values())

    # one CSV log, appended to by every piece, that reads as the uninterrupted run's
    assert _csv_rows(runs / "a") == _csv_rows(straight_dir)
    assert not list((runs / "e").glob("csv/version_*"))
    assert json.loads((runs / "e" / "loggers.json").read_text())[0]["save_dir"] == str(runs / "a")

    # one W&B run: the five pieces log under one id, the global steps going on where they stopped
    offline = _offline_runs(runs / "a")
    assert len(offline) == 5 and len({wandb_records.run_id(path) for path in offline}) == 1
    steps = [row["trainer/global_step"] for path in offline for row in wandb_records.history(path)]
    (straight_log,) = _offline_runs(straight_dir)
    assert steps == [row["trainer/global_step"] for row in wandb_records.history(straight_log)]


@pytest.mark.slow
@pytest.mark.usefixtures("two_workers")
def test_a_resume_with_other_workers_sees_every_sample_once(tiny_synthetic: Path, tmp_path: Path) -> None:
    """With another data.num_workers the rest of the epoch has the same samples, other augmentations."""
    base = [*tiny_data_overrides(tiny_synthetic), *BASE, "logger=csv", "trainer.max_epochs=1"]
    straight_dir, runs = tmp_path / "straight", tmp_path / "logs" / "train" / "runs"
    _run(
        _compose(
            tmp_path, straight_dir, [*base, "data.num_workers=2", *_sample_log(straight_dir / "samples")]
        )
    )
    stopped = [*base, "data.num_workers=2", *_stop(0, 0, "train"), *_sample_log(runs / "samples")]
    _preempted(_compose(tmp_path, runs / "a", stopped))
    resumed = [*base, "data.num_workers=0", "ckpt_path=latest", *_sample_log(runs / "samples")]
    _run(_compose(tmp_path, runs / "b", resumed))

    expected, got = read_sample_log(straight_dir / "samples"), read_sample_log(runs / "samples")
    ids = sample_ids(got)[0]
    assert ids == sample_ids(expected)[0] and sorted(ids) == list(range(NUM_TRAIN))  # same order, each once
    assert got[0][:2] == expected[0][:2]  # the batch before the stop, from the same worker stream
    assert all(a[1] != b[1] for a, b in zip(got[0][2:], expected[0][2:], strict=True))  # other crops after it


@pytest.mark.slow
def test_two_processes_preempted_mid_epoch_end_like_uninterrupted_ones(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    """DDP on the CPU (gloo): each rank goes on at its own position; together they see every sample once."""
    ddp = [
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "data.batch_size=1",
        "logger=csv",
    ]  # 2 batches per rank
    base = [*tiny_data_overrides(tiny_synthetic), *BASE, *ddp]
    straight_dir, runs = tmp_path / "straight", tmp_path / "logs" / "train" / "runs"
    result = run_train_cli(
        [*base, f"hydra.run.dir={straight_dir}", *_sample_log(straight_dir / "samples")], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # the signal reaches rank 1 only (rank 0 would pass it on): both ranks must stop after the same step
    stopped = [
        *base,
        f"hydra.run.dir={runs / 'a'}",
        *_stop(0, 0, "train", rank=1),
        *_sample_log(runs / "samples"),
    ]
    result = run_train_cli(stopped, tmp_path)
    assert result.returncode == EXIT_TERMINATED, result.stderr[-3000:]
    saved = _load(runs / "a" / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 1 and [p["batches"] for p in saved["data_position"]] == [1, 1]  # mid-epoch
    resumed = [*base, f"hydra.run.dir={runs / 'b'}", "ckpt_path=latest", *_sample_log(runs / "samples")]
    result = run_train_cli(resumed, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    _assert_same_state(
        _load(straight_dir / "checkpoints" / "last.ckpt"), _load(runs / "b" / "checkpoints" / "last.ckpt")
    )
    assert read_json(runs / "b" / "metrics.json") == read_json(straight_dir / "metrics.json")
    for epoch in (0, 1):
        shares = []
        for rank in (0, 1):
            expected, got = (
                read_sample_log(straight_dir / "samples", rank),
                read_sample_log(runs / "samples", rank),
            )
            assert got[epoch] == expected[epoch], (epoch, rank)
            shares += sample_ids(got)[epoch]
        assert sorted(shares) == list(range(NUM_TRAIN)), epoch  # the ranks' shares: every sample once


@pytest.mark.slow
def test_a_resubmitted_multirun_job_resumes_its_own_checkpoint(tiny_synthetic: Path, tmp_path: Path) -> None:
    """Two jobs of a joblib sweep with ckpt_path=latest; job 1 is pre-empted, the sweep runs again.

    One job at a time: joblib stops the sweep's other running jobs when one exits with an error, so
    with two at once job 0 may be cut short before its checkpoint, depending on the machine's load.
    Job 0 then finishes first, and job 1's checkpoint is the newer one, which a plain "newest run of
    the task" would hand to job 0 on the second run."""
    sweep = tmp_path / "logs" / "train" / "multiruns" / "sweep"
    command = [
        "-m",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=1",
        f"hydra.sweep.dir={sweep}",  # a re-submitted job runs in its own folder again
        *tiny_data_overrides(tiny_synthetic),
        *BASE,
        "trainer.max_epochs=1",
        "logger=csv",
        "model.optimizer.lr=1e-5,2e-5",  # the two jobs
        "ckpt_path=latest",  # as a sweep that may be pre-empted is submitted: each job resumes its own
        *_stop(0, 0, "train", job=1),
    ]
    first = run_train_cli(command, tmp_path)
    assert first.returncode == EXIT_TERMINATED, first.stderr[-3000:]  # job 1's status is the sweep's
    job0, job1 = (_load(sweep / str(job) / "checkpoints" / "last.ckpt") for job in (0, 1))
    assert (job0["global_step"], job1["global_step"]) == (2, 1)

    result = run_train_cli(command, tmp_path)  # the same sweep again, as a requeue runs it
    assert result.returncode == 0, result.stderr[-3000:]
    job0, job1 = (_load(sweep / str(job) / "checkpoints" / "last.ckpt") for job in (0, 1))
    assert job1["global_step"] == 2  # its second batch, on its own weights and optimizer:
    assert job1["optimizer_states"][0]["param_groups"][0]["lr"] == 2e-5  # job 0's would say 1e-5
    # job 0 was done: it resumed its own finished checkpoint, not job 1's newer one (which would have
    # trained job 1's second batch into job 0's folder)
    assert job0["optimizer_states"][0]["param_groups"][0]["lr"] == 1e-5
    for job in (0, 1):
        own = sweep / str(job) / "checkpoints" / "last.ckpt"
        assert f"this multirun job's own checkpoint {own}" in (sweep / str(job) / "train.log").read_text()
