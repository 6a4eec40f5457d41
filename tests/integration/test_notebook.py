"""notebooks/predict_and_evaluate.ipynb runs headless from a clean kernel and is committed without outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from tests.conftest import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "predict_and_evaluate.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_notebook_runs_and_shows_panels_and_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel is this interpreter (the project's venv), whatever kernels the machine has installed.
    spec_dir = tmp_path / "kernels" / "p3m"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "p3m", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.setenv("P3M_CKPT", "")  # the notebook's own random network
    # one intra-op thread, as the rest of the suite (tests/conftest.py): far faster on a busy machine
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="p3m",
        kernel_manager_kwargs={
            "kernel_spec_manager": KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
        },
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) == 2  # one panel per split
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "test/np_minus_p" in text and "sad_t" in text  # the metrics table and its gap column
    assert "no CKPT_PATH given" in text


def _setup_cell() -> str:
    """The notebook's first code cell: settings and finding the repository."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    return next(cell.source for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.parametrize("with_root", [False, True])
def test_notebook_without_an_install_finds_the_clone_or_says_what_it_needs(
    with_root: bool, tmp_path: Path
) -> None:
    """Copied out of the clone and run where p3m is not installed (``python -S``: no site-packages), the
    setup cell imports the clone's src/p3m from P3M_ROOT, or names both fixes."""
    env = {k: v for k, v in os.environ.items() if k not in ("P3M_ROOT", "PYTHONPATH")}
    if with_root:
        env["P3M_ROOT"] = str(REPO_ROOT)
    run = subprocess.run(
        [sys.executable, "-S", "-c", _setup_cell()],
        cwd=tmp_path,  # a copy of the notebook outside the repository starts here
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if with_root:
        assert run.returncode == 0, run.stderr
        assert f"from {REPO_ROOT / 'src' / 'p3m'} | clone: {REPO_ROOT}" in run.stdout
    else:
        assert run.returncode != 0 and "ModuleNotFoundError" in run.stderr
        assert "make install" in run.stderr and "P3M_ROOT=/path/to/the/clone" in run.stderr
