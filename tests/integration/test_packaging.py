"""Packaging: the conda environment and pyproject.toml agree, CI installs every extra, and a built wheel
works on its own, outside the clone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


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


def _tracked_configs() -> dict[str, bytes]:
    """The repository's configs, as a wheel must carry them (a machine's own conf/local/ stays home)."""
    files = subprocess.run(
        ["git", "ls-files", "conf"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {
        f.removeprefix("conf/"): (ROOT / f).read_bytes() for f in files if not f.startswith("conf/local/")
    }


@pytest.mark.slow
def test_a_wheel_works_outside_the_clone(tmp_path: Path, tiny_synthetic: Path, samples_dir: Path) -> None:
    """Build a wheel, install it (not editable) into a fresh venv and use it from another folder: the
    configs travel byte for byte, no top-level `src` is installed, and predict, a DDP training step
    (ranks relaunched through the `p3m` command) and `import p3m` work."""
    # built from a copy of the tracked files: setuptools writes build/ and *.egg-info into the tree
    tree = tmp_path / "tree"
    for name in subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split():
        if (ROOT / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tree / name)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(tree)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("p3m-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        carried = {n.removeprefix("p3m/conf/"): archive.read(n) for n in names if n.startswith("p3m/conf/")}
    assert carried == _tracked_configs()
    assert not [n for n in names if n.startswith("src/")], "a top-level `src` package would clash"

    # A fresh venv that borrows the dependencies (torch & co.) of this one through a plain path entry:
    # this venv's editable p3m (a .pth of its own) is not processed there, so only the wheel is p3m.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python, p3m_cmd = venv / "bin" / "python", venv / "bin" / "p3m"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", str(wheel)],
        check=True,
        timeout=300,
    )
    assert not (site / "src").exists() and (site / "p3m" / "conf" / "train.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PROJECT_ROOT")}
    env |= {"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        return done

    imported = run(
        python, "-c", "import p3m, sys; print(p3m.__file__, p3m.__version__, 'src' in sys.modules)"
    )
    assert imported.stdout.startswith(str(site / "p3m")) and imported.stdout.split()[-1] == "False"

    overrides = [
        "backbone=smoke",  # the installed command is under test, not the network
        "data=synthetic",
        f"data.root={tiny_synthetic}",
        "data.synthetic.num_train=4",
        "data.synthetic.num_test=2",
        "data.synthetic.size=[96,64]",
        "data.train_size=64",
        "data.crop_sizes=[48,64]",
        "data.batch_size=1",
        "data.num_workers=0",
        "trainer=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "debug=limit",
        "trainer.max_epochs=1",
        "logger=csv",
    ]
    run(p3m_cmd, "train", *overrides)
    checkpoints = list((elsewhere / "logs" / "train" / "runs").glob("*/checkpoints/last.ckpt"))
    assert len(checkpoints) == 1, "logs go under the current folder, and both ranks wrote one run"

    photo = next((samples_dir / "validation" / "P3M-500-NP" / "original_image").iterdir())
    run(
        p3m_cmd,
        "predict",
        f"ckpt_path={checkpoints[0]}",
        f"input={photo}",
        "output=out",
        "test_strategy=resize",
    )
    assert (elsewhere / "out" / "alpha" / f"{photo.stem}.png").is_file()
