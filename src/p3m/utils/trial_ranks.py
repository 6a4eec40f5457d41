"""The other DDP ranks of a sweep's trial run that trial alone, in its folder: never the sweep.

Lightning starts ranks 1..N-1 of a DDP run by running the program again
(``_SubprocessScriptLauncher``); under Hydra it repeats ``sys.argv[1:]`` and adds
``hydra.run.dir``. In a multirun that command line is the whole sweep: each extra rank ran its own
copy of the sweep (its own sweep folder and summary; in an Optuna sweep with a stored study, its own
trials with other hyperparameters, trained in the same DDP run as rank 0's), and in a joblib worker
the program it repeats is joblib's worker module.

:func:`trial_ranks` gives Lightning, for the time of one multirun job, the command that runs that
job alone (Hydra's run mode) in the job's own folder: the program as it was launched, the job's own
overrides, and the sweep's Hydra overrides except those of the sweep itself. The other ranks never
ask the sweeper anything: they are plain runs of one configuration. When the job ends, so do its
ranks, before Lightning's watchdog of them can take a failed trial for a reason to kill the sweep.
Outside multiruns nothing changes (Lightning repeats the command line, which is that one run).

Lightning 2.6 has no public way to choose the command of its ranks; ``_hydra_subprocess_cmd`` is the
function its launcher asks for it under Hydra, replaced here for the time of a job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, cast

from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

if TYPE_CHECKING:
    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

log = logging.getLogger(__name__)

# Hydra overrides that make the sweep (how jobs are chosen and launched, where the sweep goes): a
# rank of one job leaves them out and runs in Hydra's run mode, in the job's folder
SWEEP_KEYS = (
    "hydra.mode",
    "hydra.sweep",
    "hydra.sweeper",
    "hydra.launcher",
    "hydra.run",
    "hydra.output_subdir",
)
# what Lightning's launcher sets in the launching process for its ranks; a later trial needs its own
DDP_ENVIRONMENT = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
# how long a finished job's other ranks may take to exit (closing their loggers, files) before they are killed
RANK_EXIT_TIMEOUT_S = 120.0


def rank_program(launched_as: Sequence[str], hydra_argv: Sequence[str], main_module: str | None) -> list[str]:
    """How a rank starts the application: the interpreter, the script or module, the task, Hydra's flags.

    Args:
        launched_as: The process's command line (``sys.argv``).
        hydra_argv: Its tail that Hydra parses (overrides and flags); what comes before it (the script,
            and ``train`` in ``p3m train``) starts the application.
        main_module: ``__main__.__spec__.name`` when started with ``python -m``, else None.
    """
    head = list(launched_as[: len(launched_as) - len(hydra_argv)])
    start = ["-m", main_module] if main_module else [os.path.abspath(head[0])]
    args = get_args_parser().parse_args(list(hydra_argv))
    flags = [
        f"--{name.replace('_', '-')}={value}"
        for name in ("config_path", "config_name", "config_dir")
        if (value := getattr(args, name)) is not None
    ]
    return [sys.executable, *start, *head[1:], *flags]


def trial_command(program: Sequence[str], hydra_cfg: DictConfig) -> list[str]:
    """The command line that runs a multirun job alone, in its own folder.

    Args:
        program: :func:`rank_program`.
        hydra_cfg: The job's Hydra config (``HydraConfig.get()``): its overrides and output folder.
    """
    kept = [o for o in hydra_cfg.overrides.hydra if not _key(o).startswith(SWEEP_KEYS)]
    return [
        *program,
        *hydra_cfg.overrides.task,
        *kept,
        "hydra.mode=RUN",
        f"hydra.run.dir={_quoted(hydra_cfg.runtime.output_dir)}",
        "hydra.output_subdir=null",  # the job's .hydra/ folder is rank 0's
    ]


def _key(override: str) -> str:
    """The key an override sets: ``hydra.sweeper.storage`` of ``++hydra.sweeper.storage=x``,
    ``hydra.launcher`` of ``hydra/launcher=parallel``."""
    return override.lstrip("+~").split("=", 1)[0].replace("/", ".")


def _quoted(value: str) -> str:
    """``value`` as a quoted override value (Hydra's grammar escapes only quotes)."""
    return "'" + value.replace("'", "\\'") + "'"


@contextlib.contextmanager
def trial_ranks(
    launched_as: Sequence[str], hydra_argv: Sequence[str], main_module: str | None
) -> Iterator[None]:
    """Within a multirun job, Lightning's other DDP ranks run this job alone (see the module's docstring).

    The arguments are those of :func:`rank_program`, taken in the launching process. At the end of
    the job its ranks are gone (waited for; killed if the job failed), its process group closed and
    Lightning's DDP variables put back, so the next job of the process starts its own ranks on a new
    port, on free GPUs.
    """
    if not (HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN):
        yield
        return
    # imported here: every task's command starts through this module, and Lightning takes seconds
    import torch.distributed as dist
    from lightning.pytorch.strategies.launchers import subprocess_script

    hydra_cfg = cast(DictConfig, HydraConfig.get())  # a DictConfig at run time
    command = trial_command(rank_program(launched_as, hydra_argv, main_module), hydra_cfg)
    cwd = hydra_cfg.runtime.cwd
    lightning_command = subprocess_script._hydra_subprocess_cmd
    environment = {name: os.environ.get(name) for name in DDP_ENVIRONMENT}
    had_process_group = dist.is_available() and dist.is_initialized()
    watchdogs = set(_watchdogs())
    subprocess_script._hydra_subprocess_cmd = lambda local_rank: (command, cwd)
    failed = True
    try:
        yield
        failed = False
    finally:
        subprocess_script._hydra_subprocess_cmd = lightning_command
        for watchdog in _watchdogs():
            if watchdog not in watchdogs:
                _end_ranks(watchdog, kill=failed)
        if dist.is_available() and dist.is_initialized() and not had_process_group:
            dist.destroy_process_group()
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _watchdogs() -> list[_ChildProcessObserver]:
    """Lightning's threads that watch the ranks a launcher started in this process."""
    from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

    return [thread for thread in threading.enumerate() if isinstance(thread, _ChildProcessObserver)]


def _end_ranks(watchdog: _ChildProcessObserver, kill: bool, timeout_s: float = RANK_EXIT_TIMEOUT_S) -> None:
    """Wait for a job's ranks to exit (kill them if the job failed), with Lightning's watchdog disarmed.

    The watchdog kills this process as soon as a rank exits with an error, which in a sweep would end
    every trial still to come: the job is over (its result or error goes to the sweeper), so its
    ranks are ours to end.
    """
    ranks = list(watchdog._child_processes)
    watchdog._child_processes.clear()  # nothing left to watch: the watchdog ends at its next look
    for rank in ranks:
        if kill:
            rank.kill()
        try:
            rank.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "a DDP rank of the job (pid %d) still runs %.0f s after it; killed", rank.pid, timeout_s
            )
            rank.kill()
            rank.wait()
