"""The conda environment and pyproject.toml list the same dependencies, and CI installs every extra."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _names(specs: list[str]) -> dict[str, str]:
    return {re.split(r"[<>=!~\[ ]", s, maxsplit=1)[0].lower(): s.replace(" ", "") for s in specs}


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert {"dev", "app"} <= extras.keys()
    expected = _names(project["dependencies"] + [spec for group in extras.values() for spec in group])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _names(pip_block) == expected


def test_make_install_installs_every_extra() -> None:
    """`.ci/run` runs `make install`: it must install every extra, or the demo's tests would not run."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "make install" in (ROOT / ".ci" / "run").read_text()
    installed = re.search(r"pip install --quiet -e '\.\[([a-z,]+)\]'", (ROOT / "Makefile").read_text())
    assert installed is not None
    assert set(installed[1].split(",")) == set(extras)
