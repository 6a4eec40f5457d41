"""Run the entry points as a user would, in a subprocess, with logs under a test's ``tmp_path``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT


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
    return subprocess.run(cmd, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout)


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file as a dict."""
    return json.loads(path.read_text())
