"""One way to run a task as a Hydra application, from a script in the clone or the installed ``p3m``.

Where the configs are: an installed wheel carries them as ``p3m/conf``; a source tree (the clone,
or an editable install of it) has them at its top level, ``conf/``. :func:`config_dir` finds either.

Where outputs go: ``conf/paths`` roots data and logs at ``${p3m.root:}``, which is ``PROJECT_ROOT``
when set, else the source tree whose configs are in use (so ``python src/train.py`` and ``p3m train``
in a clone both log into the clone, whatever the current folder), else the current folder (an
installed wheel).

Why the command line is handled here: Hydra parses ``sys.argv``, and Lightning starts the other DDP
ranks by re-running ``sys.argv``. ``p3m train a=b`` must show Hydra only ``a=b`` but leave
``train a=b`` for Lightning, so :func:`hydra_app` hands Hydra the overrides and puts the process's
command line back before the task runs. In a multirun, Lightning's other ranks of a job run that
job alone (:mod:`p3m.utils.trial_ranks`), started the way this process was.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import hydra
from omegaconf import DictConfig, OmegaConf

import p3m.utils.optuna_seed  # noqa: F401  (registers ${study_seed:...} of conf/hparams_search)
from p3m.utils.trial_ranks import trial_ranks

PACKAGE_DIR = Path(__file__).resolve().parents[1]
ROOT_RESOLVER = "p3m.root"


def config_dir() -> Path:
    """The configs in use: the wheel's ``p3m/conf``, else the source tree's top-level ``conf/``."""
    for candidate in (PACKAGE_DIR / "conf", PACKAGE_DIR.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"p3m's configs are missing: neither {PACKAGE_DIR / 'conf'} (an installed wheel) nor "
        f"{PACKAGE_DIR.parents[1] / 'conf'} (a clone) holds train.yaml; reinstall p3m"
    )


def project_root() -> str:
    """Where data and logs go: ``PROJECT_ROOT``, else the source tree in use, else the current folder."""
    explicit = os.environ.get("PROJECT_ROOT")
    if explicit:
        return explicit
    conf = config_dir()
    if conf.parent != PACKAGE_DIR:  # a source tree's conf/, not the wheel's p3m/conf
        return str(conf.parent)
    return os.getcwd()


if not OmegaConf.has_resolver(ROOT_RESOLVER):
    OmegaConf.register_new_resolver(ROOT_RESOLVER, project_root)


class TaskMain(Protocol):
    """A task's ``main``: ``main()`` reads ``sys.argv``, ``main([...])`` the given arguments."""

    def __call__(self, args: Sequence[str] | None = None) -> None: ...


def hydra_app(config_name: str, task: Callable[[DictConfig], Any]) -> TaskMain:
    """``task`` as a Hydra application over ``conf/<config_name>.yaml``.

    The returned function takes the command-line arguments (None: ``sys.argv[1:]``), with everything
    Hydra offers: overrides, ``--multirun``, ``--help``, ``--cfg job``, ``--config-dir``.
    """

    def main(args: Sequence[str] | None = None) -> None:
        import __main__

        launched_as = list(sys.argv)
        hydra_argv = launched_as[1:] if args is None else list(args)
        spec = getattr(__main__, "__spec__", None)  # read here: a joblib worker's __main__ is joblib's
        main_module = spec.name if spec else None

        @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)
        @functools.wraps(task)  # Hydra names the job after the task's module (train, eval, ...)
        def job(cfg: DictConfig) -> Any:
            sys.argv = launched_as  # what Lightning re-runs to start the other DDP ranks
            with trial_ranks(launched_as, hydra_argv, main_module):  # in a multirun: this job alone
                return task(cfg)

        if args is not None:
            sys.argv = [launched_as[0], *args]  # what Hydra parses
        try:
            job()
        finally:
            sys.argv = launched_as

    return main
