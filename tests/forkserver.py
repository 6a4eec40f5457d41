"""A warm interpreter that forks one child per entry-point run of the tests (``tests.cli.run_python``).

A fresh ``python src/train.py`` spends ~8 s of a 2-core machine importing torch, Lightning and Hydra
before it reads its first argument, and the integration tier starts dozens of them. This server
imports them once and forks: each child is a new process (its own pid, exit status, working
directory, environment, resource limits and output files) that runs the script or module with
``runpy`` as ``python`` would. What a fork cannot redo is left to a real interpreter by the client:
other executables, ``-c`` and other interpreter flags. The cold start itself keeps real runs
(tests/integration/test_cli.py, test_packaging.py).

Protocol, one JSON line each way on stdin/stdout: a request ``{"argv", "cwd", "env", "stdout",
"stderr", "file_size_limit"}`` is answered by ``{"pid"}`` once forked and by ``{"status"}``
(``os.waitstatus_to_exitcode``: negative for a signal) once the child ended. End of input ends it.
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import signal
import sys
from typing import IO, Any


def limit_file_size(limit: int) -> None:
    """In a child: files over ``limit`` bytes fail to write (EFBIG), as they would on a full disk."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get the error instead of being killed
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _become(request: dict[str, Any], base_path: list[str]) -> None:
    """In the child: take the request's files, folder, environment and arguments, then run it."""
    import torch

    for fd, name in ((1, "stdout"), (2, "stderr")):
        os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    os.chdir(request["cwd"])
    env: dict[str, str] = request["env"]
    os.environ.clear()
    os.environ.update(env)
    if request["file_size_limit"] is not None:
        limit_file_size(request["file_size_limit"])
    if "PYTHONUNBUFFERED" in env:
        sys.stdout.reconfigure(write_through=True)  # type: ignore[union-attr]
    if "OMP_NUM_THREADS" in env:  # OpenMP read the variable when torch was loaded: set it again
        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    args = request["argv"][1:]
    if args[0] == "-m":
        sys.path[:] = [os.getcwd(), *extra, *base_path]
        sys.argv = args[1:]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.path[:] = [os.path.dirname(os.path.abspath(args[0])), *extra, *base_path]
        sys.argv = args
        runpy.run_path(args[0], run_name="__main__")


def _reply(replies: IO[str], **message: int) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


def main() -> None:
    # the control channel moves off fds 0 and 1, which each child points at /dev/null and its output
    requests, replies = os.fdopen(os.dup(0), "r"), os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    base_path = sys.path[1:]  # without this file's folder: a run puts its script's folder first

    # W&B is each child's own import: importing it makes a temporary media folder that the first
    # child to exit would delete for every later one (timm, which would import it, takes it as absent)
    sys.modules["wandb"] = None  # type: ignore[assignment]
    import hydra  # noqa: F401
    import lightning  # noqa: F401

    import p3m.tasks.eval
    import p3m.tasks.predict
    import p3m.tasks.train  # noqa: F401

    del sys.modules["wandb"]

    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            requests.close()
            replies.close()
            _become(request, base_path)
            sys.exit(0)  # the script returned: exit as python does, atexit handlers and all
        _reply(replies, pid=pid)
        _, status = os.waitpid(pid, 0)
        _reply(replies, status=os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
