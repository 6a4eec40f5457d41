"""The exit-code contract through the real commands: a user error exits 2 with one message, no traceback.

Each case is a mistake a new user made (issue 21); the commands run as ``python src/<task>.py``, a few
at a time, on tiny inputs. Up-front refusals print nothing but their one error line (and, for train,
the seed and allocator lines that come before any check).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from p3m.models.components.p3mnet import P3MNet
from tests.cli import run_python
from tests.conftest import REPO_ROOT, tiny_data_overrides
from tests.fixtures import SAMPLES_DIR

pytestmark = pytest.mark.slow

Case = tuple[str, list[str], str, int | None]  # script, arguments, expected message, max lines (None: any)


def run(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    env.pop("P3M10K_ROOT", None)
    command = [sys.executable, str(REPO_ROOT / "src" / script), *args, f"paths.log_dir={tmp_path / 'logs'}"]
    return run_python(command, cwd=tmp_path, env=env)


def check_cases(cases: list[Case], tmp_path: Path) -> None:
    """Run the cases two at a time; each must exit 2 with its message on one line and no traceback."""
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda case: run(case[0], case[1], tmp_path), cases))
    for (script, args, message, max_lines), result in zip(cases, results, strict=True):
        output = result.stdout + result.stderr
        where = f"{script} {' '.join(args)}:\n{output[-3000:]}"
        errors = [line for line in output.splitlines() if "[ERROR]" in line]
        assert result.returncode == 2, where
        assert "Traceback" not in output, where
        assert len(errors) == 1 and message in errors[0], where
        assert max_lines is None or len(output.splitlines()) <= max_lines, where


@pytest.fixture(scope="module")
def r34_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder whose last.ckpt holds ResNet-34 P3M-Net weights (shapes only: meta tensors)."""
    with torch.device("meta"):
        state = P3MNet("resnet34").state_dict()
    path = tmp_path_factory.mktemp("r34_run") / "last.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, path)
    return path


def test_inference_entry_points_refuse_bad_input_before_any_work(tmp_path: Path, r34_run: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(next((SAMPLES_DIR / "train" / "blurred_image").glob("*.jpg")), photos)
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes(b"not an onnx graph")
    malicious = tmp_path / "malicious.ckpt"
    torch.save({"state_dict": {}, "hook": print}, malicious)  # a pickled callable: refused, never run
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    io = [f"input={photos}", f"output={tmp_path / 'out'}"]
    check_cases(
        [
            (
                "predict.py",
                ["runtime=onnx", f"onnx_path={not_onnx}", *io],
                f"{not_onnx} is not an ONNX model",
                1,
            ),
            ("predict.py", [f"ckpt_path={r34_run}", "test_strategy=hybird", *io], "did you mean hybrid?", 1),
            ("anonymize.py", ["method=pixelate", *io], "method=pixelate: expected one of blur | mosaic", 1),
            (
                "anonymize.py",
                [f"input={tmp_path / 'absent'}", f"output={tmp_path / 'a'}"],
                "does not exist",
                1,
            ),
            ("app.py", [f"ckpt_path={tmp_path / 'absent.ckpt'}"], "absent.ckpt: does not exist", 1),
            ("app.py", [f"ckpt_path={malicious}"], "refused for safety", 1),
            (
                "export.py",
                [f"ckpt_path={r34_run}", f"output={a_file}/sub/p3mnet.onnx"],
                "is a file, not a folder",
                1,
            ),
        ],
        tmp_path,
    )
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("**/.*.tmp*"))


def test_training_refuses_mistakes_also_inside_dataloader_workers(
    tmp_path: Path, tiny_synthetic: Path, r34_run: Path
) -> None:
    truncated = Path(shutil.copytree(tiny_synthetic, tmp_path / "truncated"))
    for image in (truncated / "train" / "blurred_image").iterdir():
        image.write_bytes(image.read_bytes()[:300])
    tiny = [*tiny_data_overrides(tiny_synthetic), "backbone=smoke", "logger=csv"]
    check_cases(
        [
            ("train.py", [*tiny, "data.batch_size=-1"], "data.batch_size=-1: must be at least 1", 3),
            (
                "train.py",
                [*tiny, "backbone=swin", f"ckpt_path={r34_run}"],
                "holds a resnet34 P3M-Net, not swin",
                3,
            ),
            (
                "train.py",
                [
                    *tiny_data_overrides(truncated),
                    "backbone=smoke",
                    "logger=csv",
                    "data.num_workers=1",
                    "trainer.max_epochs=1",
                ],
                "truncated JPEG (no end-of-image marker)",
                None,  # training had started: its progress lines come first
            ),
        ],
        tmp_path,
    )


def test_a_sweep_with_a_failed_job_still_writes_its_summary(tmp_path: Path, tiny_synthetic: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        *tiny_data_overrides(tiny_synthetic),
        "backbone=smoke",
        "train=false",
        "test=false",
        "data.batch_size=-1,2",
    ]
    result = run("train.py", [*args, f"hydra.sweep.dir={sweep}"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]  # some jobs failed, the others ran
    assert "Traceback" not in output, output[-3000:]
    summary = (sweep / "summary.md").read_text()
    assert "| failed |" in summary and "| completed |" in summary, summary
    assert "data.batch_size=-1: must be at least 1" in summary
    assert (sweep / "summary.csv").is_file()
