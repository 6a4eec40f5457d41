"""Run the entry points as a user would, in a process of their own, with logs under a test's ``tmp_path``."""

from __future__ import annotations

import atexit
import functools
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT
from tests.forkserver import limit_file_size

FORKSERVER = Path(__file__).with_name("forkserver.py")


class _ForkServer:
    """One warm interpreter per test process (see tests/forkserver.py), started on first use."""

    def __init__(self) -> None:
        startup = ("PYTHONPATH", "OMP_", "MKL_", "COV_", "COVERAGE_")  # what a child sets for itself
        env = {k: v for k, v in os.environ.items() if not k.startswith(startup)}
        self.process = subprocess.Popen(
            [sys.executable, str(FORKSERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO_ROOT,
        )
        self.replies = b""  # read with os.read, not a buffered reader: select must see what is unread
        atexit.register(self.process.kill)

    def _read(self, timeout: float | None) -> dict[str, int]:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self.replies:
            if not select.select([fd], [], [], timeout)[0]:
                raise TimeoutError
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(
                    f"{FORKSERVER.name} ended (status {self.process.wait()}); see the test's stderr"
                )
            self.replies += chunk
        line, self.replies = self.replies.split(b"\n", 1)
        return json.loads(line)

    def run(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        timeout: float | None,
        file_size_limit: int | None,
    ) -> subprocess.CompletedProcess[str]:
        stdin = self.process.stdin
        assert stdin is not None
        with tempfile.TemporaryDirectory(prefix="p3m_run_") as folder:
            out, err = Path(folder, "stdout"), Path(folder, "stderr")
            request = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
            stdin.write(json.dumps({**request, "file_size_limit": file_size_limit}).encode() + b"\n")
            stdin.flush()
            pid = self._read(timeout)["pid"]  # the first request waits for the server's imports
            try:
                status = self._read(timeout)["status"]
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._read(None)
                raise subprocess.TimeoutExpired(argv, timeout or 0, _text(out), _text(err)) from None
            return subprocess.CompletedProcess(argv, status, _text(out), _text(err))


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


_idle: list[_ForkServer] = []  # a test may run entry points from several threads: one server each
_idle_lock = threading.Lock()


def run_python(
    argv: Sequence[str | Path],
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float | None = 600,
    file_size_limit: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)``.

    ``python SCRIPT ...`` and ``python -m MODULE ...`` fork from a warm interpreter, which has imported
    torch, Lightning and Hydra already (~8 s each run on 2 cores); anything else starts for real.
    ``file_size_limit`` (bytes) makes larger writes fail as on a full disk.
    """
    args = [str(a) for a in argv]
    env = dict(os.environ if env is None else env)
    if len(args) < 2 or args[0] != sys.executable or (args[1].startswith("-") and args[1] != "-m"):
        limit = None if file_size_limit is None else functools.partial(limit_file_size, file_size_limit)
        return subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, preexec_fn=limit
        )
    with _idle_lock:
        server = _idle.pop() if _idle else None
    if server is None or server.process.poll() is not None:
        server = _ForkServer()
    try:
        return server.run(args, cwd, env, timeout, file_size_limit)
    finally:
        with _idle_lock:
            _idle.append(server)


def run_train_cli(
    args: list[str], tmp_path: Path, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python src/train.py ARGS paths.log_dir=<tmp>/logs`` in ``tmp_path``; one torch thread per process."""
    full_env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",  # 2 shared cores: DDP ranks and sweep jobs each get one thread
        "PYTHONPATH": str(REPO_ROOT),  # so test-only callbacks (tests.*) can be named in overrides
        **(env or {}),
    }
    cmd = [sys.executable, str(REPO_ROOT / "src" / "train.py"), *args, f"paths.log_dir={tmp_path / 'logs'}"]
    return run_python(cmd, cwd=tmp_path, env=full_env, timeout=timeout)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file as a dict."""
    return json.loads(path.read_text())
