"""The ``p3m`` command: ``p3m <task> [Hydra overrides and flags]``, one Hydra app per task.

``p3m train backbone=vitae trainer.devices=4`` is ``python src/train.py backbone=vitae
trainer.devices=4`` of a clone: same configs, overrides, ``--multirun``, ``--help``, ``--cfg job``.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Sequence

from p3m import __version__
from p3m.tasks import TASKS
from p3m.utils.errors import EXIT_USER_ERROR


def usage() -> str:
    """``p3m --help``: the tasks, one line each."""
    width = max(map(len, TASKS))
    lines = [
        "usage: p3m <task> [key=value ...] [--multirun] [--help] [--cfg job]",
        "       p3m --version",
        "",
        "Privacy-preserving portrait matting (P3M-Net). Tasks:",
        *(f"  {name:<{width}}  {summary}" for name, summary in TASKS.items()),
        "",
        "`p3m <task> --help` lists the task's config groups and keys.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``p3m <task> ...``; ``argv`` defaults to ``sys.argv[1:]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        raise SystemExit(0 if args else EXIT_USER_ERROR)
    if args[0] == "--version":
        print(f"p3m {__version__}")
        return
    task, overrides = args[0], args[1:]
    if task not in TASKS:
        close = difflib.get_close_matches(task, TASKS, n=1)
        hint = f"did you mean `p3m {close[0]}`? " if close else ""
        print(f"p3m: unknown task {task!r}; {hint}the tasks are {', '.join(TASKS)}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)
    importlib.import_module(f"p3m.tasks.{task}").main(overrides)
