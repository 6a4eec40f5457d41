"""What the other DDP ranks of a multirun job run: that job alone, in its folder, started as rank 0 was."""

from __future__ import annotations

import os
import subprocess
import sys

from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
from omegaconf import OmegaConf

from p3m.utils import trial_ranks
from p3m.utils.trial_ranks import rank_program, trial_command


def test_ranks_start_the_program_as_it_was_started() -> None:
    script = rank_program(
        ["src/train.py", "-m", "loss=paper,no_composition"], ["-m", "loss=paper,no_composition"], None
    )
    assert script == [sys.executable, os.path.abspath("src/train.py")]
    installed = ["/venv/bin/p3m", "train", "--config-dir=/my/conf", "-m", "lr=1,2"]
    assert rank_program(installed, installed[2:], None) == [
        sys.executable,
        "/venv/bin/p3m",
        "train",
        "--config-dir=/my/conf",
    ]
    module = ["/src/p3m/__main__.py", "eval", "-cn", "eval", "a=1"]
    assert rank_program(module, module[2:], "p3m.__main__") == [
        sys.executable,
        "-m",
        "p3m.__main__",
        "eval",
        "--config-name=eval",
    ]


def test_a_rank_runs_its_job_alone_in_the_jobs_folder() -> None:
    hydra_cfg = OmegaConf.create(
        {
            "overrides": {
                "task": ["hparams_search=p3m_optuna", "model.optimizer.lr=4.2e-06", "augmentation=paper"],
                "hydra": [
                    "hydra/launcher=parallel",
                    "hydra.launcher.n_jobs=2",
                    "hydra.sweeper.storage=sqlite:///study.db",
                    "++hydra.sweeper.n_trials=2",
                    "hydra.job.chdir=true",
                    "hydra.mode=MULTIRUN",
                ],
            },
            "runtime": {"output_dir": "/logs/train/multiruns/it's here/1"},
        }
    )
    assert trial_command(["python", "src/train.py"], hydra_cfg) == [
        "python",
        "src/train.py",
        "hparams_search=p3m_optuna",
        "model.optimizer.lr=4.2e-06",
        "augmentation=paper",
        "hydra.job.chdir=true",  # how the job runs stays; the sweep's keys go
        "hydra.mode=RUN",
        "hydra.run.dir='/logs/train/multiruns/it\\'s here/1'",
        "hydra.output_subdir=null",
    ]


def test_a_failed_jobs_ranks_are_ended_without_lightnings_watchdog_killing_the_sweep() -> None:
    sleeping = [sys.executable, "-c", "import time; time.sleep(60)"]
    sweep = subprocess.Popen(sleeping)  # stands for the sweep's process, which the watchdog would kill
    rank = subprocess.Popen(sleeping)  # a rank of a job that failed
    watchdog = _ChildProcessObserver(main_pid=sweep.pid, child_processes=[rank], sleep_period=0.05)
    watchdog.start()
    try:
        assert watchdog in trial_ranks._watchdogs()
        trial_ranks._end_ranks(watchdog, kill=True)
        assert rank.returncode is not None  # killed and waited for
        watchdog.join(timeout=10)
        assert not watchdog.is_alive() and sweep.poll() is None  # the watchdog ended; the sweep lives
    finally:
        for process in (sweep, rank):
            process.kill()
            process.wait()
