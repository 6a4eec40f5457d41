"""The `p3m` command: the tasks listed with one line each, unknown tasks refused, each task a Hydra app."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from p3m import __version__
from p3m.cli import main
from p3m.tasks import TASKS
from p3m.utils.errors import EXIT_USER_ERROR
from tests.conftest import REPO_ROOT


def test_help_lists_every_task_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    block = out.split("Tasks:\n", 1)[1].split("\n\n", 1)[0]
    listed = [line.split()[0] for line in block.splitlines()]
    assert (
        listed
        == list(TASKS)
        == ["train", "eval", "predict", "export", "convert", "anonymize", "prepare", "app"]
    )
    assert all((REPO_ROOT / "src" / f"{task}.py").is_file() for task in TASKS)  # each has its script


def test_version_and_unknown_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--version"])
    assert capsys.readouterr().out.strip() == f"p3m {__version__}"
    with pytest.raises(SystemExit) as exit_:
        main(["trian", "a=b"])
    assert exit_.value.code == EXIT_USER_ERROR
    assert "did you mean `p3m train`" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == EXIT_USER_ERROR


def test_import_p3m_is_light_and_changes_nothing_of_the_callers() -> None:
    script = (
        "import os, sys; env, path, before = dict(os.environ), list(sys.path), set(sys.modules)\n"
        "import p3m\n"
        "assert dict(os.environ) == env and sys.path == path, 'import p3m changed the environment'\n"
        "assert 'torch' not in sys.modules and 'src' not in sys.modules, sorted(set(sys.modules) - before)\n"
        "assert callable(p3m.load_model) and callable(p3m.Predictor)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROJECT_ROOT"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_python_m_p3m_runs_the_hydra_app_of_the_task(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    shown = subprocess.run(
        [sys.executable, "-m", "p3m", "predict", "--cfg", "job", "test_strategy=resize"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "test_strategy: resize" in shown.stdout and "ckpt_path:" in shown.stdout
    helped = subprocess.run(
        [sys.executable, "-m", "p3m", "eval", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert helped.returncode == 0 and "== Configuration groups ==" in helped.stdout, helped.stderr
