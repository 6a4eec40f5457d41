"""What every entry point does around its task: exit codes, log routing, config checks, closing loggers.

The exit codes are those of :mod:`p3m.utils.errors`. A :class:`~p3m.utils.errors.UserError` prints
its message once, without a traceback, and exits 2; any other exception is a bug and keeps its
traceback (Hydra prints it; the run's log file gets it too). SIGTERM exits 143 and Ctrl-C 130, also
when Lightning turned them into its own exits.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from p3m.utils.distributed import effective_batch_size
from p3m.utils.errors import (
    EXIT_INTERRUPTED,
    EXIT_PARTIAL_FAILURE,
    EXIT_TERMINATED,
    EXIT_USER_ERROR,
    UserError,
    user_error_from_worker,
)
from p3m.utils.lightning_noise import silence_lightning_noise

if TYPE_CHECKING:  # Lightning takes seconds to import: the tasks without a Trainer never load it
    from lightning import LightningModule, Trainer

log = logging.getLogger(__name__)

# Lightning's loggers get their own stderr handler at import (before Hydra configures logging) and
# lightning.pytorch / lightning.fabric do not propagate: their messages never reach the run's log file.
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


def task_wrapper(
    task: Callable[[DictConfig], Any] | None = None,
    *,
    check: Callable[[DictConfig], None] | None = None,
    saves_on_sigterm: bool = False,
) -> Any:
    """Wrap an entry point's task: route Lightning's logs, run ``check(cfg)``, map failures to exit codes.

    Usable as ``@task_wrapper`` or ``task_wrapper(task, check=ConfigCheck(...))(cfg)``. W&B is always
    closed, so a crashed run does not hang a multirun. SIGTERM raises in the task, so that its
    ``finally`` blocks remove temporary files before the exit 143, unless ``saves_on_sigterm``: training
    leaves SIGTERM to Lightning, which finishes the batch and saves ``last.ckpt`` first.
    """
    if task is None:
        return functools.partial(task_wrapper, check=check, saves_on_sigterm=saves_on_sigterm)

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> Any:
        route_lightning_logs()
        silence_lightning_noise()
        standard_start_method()
        sigterm = contextlib.nullcontext() if saves_on_sigterm else _sigterm_raises()
        with _watch_sigint() as interrupted, sigterm:
            try:
                if check is not None:
                    check(cfg)
                return task(cfg)
            except KeyboardInterrupt:
                log.error("Interrupted (Ctrl-C): exit %d", EXIT_INTERRUPTED)
                raise SystemExit(EXIT_INTERRUPTED) from None
            except SystemExit as exit_:
                if _terminated(exit_):  # a SystemExit without a code: the shell would see success
                    resume = "; resume with ckpt_path=latest" if saves_on_sigterm else ""
                    log.error("Terminated (SIGTERM): exit %d%s", EXIT_TERMINATED, resume)
                    raise SystemExit(EXIT_TERMINATED) from None
                if interrupted:  # Lightning's Ctrl-C handling ends with sys.exit(1)
                    log.error("Interrupted (Ctrl-C): exit %d", EXIT_INTERRUPTED)
                    raise SystemExit(EXIT_INTERRUPTED) from None
                raise exit_
            except Exception as err:
                user_error = _user_error(err)
                if user_error is None:
                    _log_traceback_to_files(err)
                    raise
                log.error("%s", user_error)
                if _in_multirun():  # the sweeper records the failed job and goes on
                    raise FailedJobError(str(user_error)) from None
                raise SystemExit(EXIT_USER_ERROR) from None
            finally:
                _finish_wandb()

    return wrapped


class Terminated(SystemExit):
    """SIGTERM in a task that leaves no checkpoint: raised so that ``finally`` blocks run first."""


def _terminated(exit_: SystemExit) -> bool:
    """SIGTERM's exception: ours, or Lightning's ``SIGTERMException`` (training leaves SIGTERM to
    Lightning; a task that never imported Lightning cannot have raised it)."""
    if isinstance(exit_, Terminated):
        return True
    lightning_exceptions = sys.modules.get("lightning.pytorch.utilities.exceptions")
    return lightning_exceptions is not None and isinstance(exit_, lightning_exceptions.SIGTERMException)


class FailedJobError(UserError, CompactHydraException):
    """A job's user error in a sweep: the sweeper records it in the job's result and runs the batch's
    other jobs; then Hydra prints this one line, no traceback, and the sweep exits 1 (some failed)."""


def _user_error(err: BaseException) -> UserError | None:
    """``err`` if a :class:`UserError`, the one Hydra wrapped while instantiating a config, or the
    one a DataLoader worker raised (torch passes it on as text)."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    from_worker = user_error_from_worker(err)
    if from_worker is not None:
        return from_worker
    return err if isinstance(err, UserError) else None


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@contextlib.contextmanager
def _watch_sigint() -> Iterator[list[bool]]:
    """A list that holds ``True`` once Ctrl-C was pressed (Ctrl-C still raises KeyboardInterrupt)."""
    interrupted: list[bool] = []
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
        yield interrupted
        return

    def handler(signum: int, frame: Any) -> None:
        interrupted.append(True)
        signal.default_int_handler(signum, frame)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main process (a forked worker still dies as by
    default): the default action would end the process at once, leaving temporary files."""
    if threading.current_thread() is not threading.main_thread():  # signals are the main thread's
        yield
        return
    main_pid = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != main_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def standard_start_method() -> None:
    """Give DataLoader workers the platform's start method inside joblib's (loky) worker processes.

    hydra/launcher=parallel runs each job in a loky worker, where multiprocessing's default start
    method is loky's own, with which DataLoader workers fail to start (``data.num_workers > 0``).
    """
    if multiprocessing.get_start_method(allow_none=True) == "loky":
        multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)


def route_lightning_logs() -> None:
    """Send Lightning's log records to the root handlers (Hydra's console and the run's log file)."""
    if not logging.getLogger().handlers:  # nothing configured logging: keep Lightning's own handler
        return
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # Lightning's console handler, not a file
                logger.removeHandler(handler)
        logger.propagate = True


def _log_traceback_to_files(err: BaseException) -> None:
    """Write a bug's traceback into the run's log file (Hydra prints it on the console, once)."""
    record = log.makeRecord(
        log.name, logging.ERROR, __file__, 0, "Task failed", (), (type(err), err, err.__traceback__)
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _finish_wandb() -> None:
    try:
        import wandb

        if wandb.run is not None:
            wandb.finish()
    except ImportError:  # pragma: no cover - wandb is a dependency
        pass


def exit_for_failures(failed: int, what: str) -> None:
    """Exit 1 when ``failed`` inputs failed (the rest are done); the count goes to the log.

    Args:
        failed: How many inputs failed.
        what: What they are, plural ("images").
    """
    if failed:
        log.error("%s that failed: %d (listed above); the others are done", what.capitalize(), failed)
        sys.exit(EXIT_PARTIAL_FAILURE)


def log_hyperparameters(
    cfg: DictConfig, model: LightningModule, trainer: Trainer, resolved: Mapping[str, Any] | None = None
) -> None:
    """Send the resolved config and the parameter counts to every logger (on the global rank 0).

    ``resolved`` replaces top-level entries with what is known only at run time (eval's
    ``backbone=auto`` -> the backbone read from the checkpoint).
    """
    if not trainer.is_global_zero or not trainer.loggers:
        return
    # the `hydra` node is only present in composed (test) configs and needs a running Hydra job
    params: dict[str, Any] = {
        str(k): OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
        for k, v in cfg.items()
        if k != "hydra"
    }
    params |= resolved or {}
    params["model/params/total"] = sum(p.numel() for p in model.parameters())
    params["model/params/trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params["trainer/world_size"] = trainer.world_size
    batch_size = cfg.get("data", {}).get("batch_size")
    if isinstance(batch_size, int):
        params["data/effective_batch_size"] = effective_batch_size(
            batch_size, trainer.num_devices, trainer.num_nodes, trainer.accumulate_grad_batches
        )
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def metric_value(metrics: dict[str, Any], name: str | None) -> float | None:
    """The float value of ``name`` in ``metrics`` (for Hydra sweepers), or None when absent."""
    if not name or name not in metrics:
        return None
    return float(metrics[name])


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Plain floats of the scalar entries of ``metrics`` (tensors included), sorted by name."""
    out: dict[str, float] = {}
    for name in sorted(metrics):
        value = metrics[name]
        try:
            out[name] = float(value)
        except (TypeError, ValueError, RuntimeError):  # non-scalar tensors and other objects
            continue
    return out


def save_metrics(metrics: Mapping[str, Any], output_dir: str | Path, filename: str = "metrics.json") -> Path:
    """Write the final metrics of a run as JSON (NaN/Inf as null) into its directory; returns the path."""
    path = Path(output_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: (v if math.isfinite(v) else None) for k, v in scalar_metrics(metrics).items()}
    path.write_text(json.dumps(clean, indent=2) + "\n")
    return path
