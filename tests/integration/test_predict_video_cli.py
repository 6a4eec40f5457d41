"""src/predict.py on a video as a user runs it: exit codes, the refusal to overwrite, a full disk."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from p3m.models import P3MNet
from tests.cli import run_python
from tests.conftest import REPO_ROOT
from tests.inference.clips import read_clip, write_clip

FILE_SIZE_LIMIT = 64 * 1024  # bytes: the videos of a noisy 256x192 clip are larger


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ResNet-34 P3M-Net as our Lightning checkpoints hold it (tests/inference's fixture)."""
    torch.manual_seed(0)
    state = P3MNet("resnet34").state_dict()
    path = tmp_path_factory.mktemp("checkpoint") / "random_r34.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, path)
    return path


def _predict(ckpt: Path, clip: Path, out: Path, log_dir: Path, *extra: str, limit: bool = False):
    command = [
        sys.executable,
        "src/predict.py",
        f"ckpt_path={ckpt}",
        f"input={clip}",
        f"output={out}",
        "test_strategy=resize",
        f"hydra.run.dir={log_dir}",
        *extra,
    ]
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return run_python(
        command, REPO_ROOT, env, timeout=300, file_size_limit=FILE_SIZE_LIMIT if limit else None
    )


@pytest.mark.slow
def test_cli_predicts_a_video_and_refuses_to_overwrite_it(tiny_checkpoint: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clip = write_clip(tmp_path / "clip.mp4", [rng.integers(0, 256, (96, 64, 3), np.uint8) for _ in range(4)])
    out = tmp_path / "out"
    result = _predict(tiny_checkpoint, clip, out, tmp_path / "log", "video_output=[webm,mp4]")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert f"wrote the mattes of 4 frames to {out / 'clip_rgba.webm'} and {out / 'clip_alpha.mp4'}" in log
    assert len(read_clip(out / "clip_rgba.webm", alpha=True)[0]) == 4
    again = _predict(tiny_checkpoint, clip, out, tmp_path / "log2", "video_output=[webm,mp4]")
    assert again.returncode == 2 and "3 output file(s) already exist" in again.stdout + again.stderr


@pytest.mark.slow
def test_a_full_disk_is_named_and_leaves_no_partial_video(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The video outgrows the file-size limit: exit 1 (a failed input), the message says the disk is
    full (not a frame count), and neither the video nor its temporary file is left."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (192, 256, 3), np.uint8) for _ in range(6)]
    clip = write_clip(tmp_path / "noise.mp4", frames, audio_seconds=None)
    assert clip.stat().st_size > FILE_SIZE_LIMIT  # lossless noise: its outputs are as large
    out = tmp_path / "out"
    result = _predict(tiny_checkpoint, clip, out, tmp_path / "log", "video_output=prores", limit=True)
    log = result.stdout + result.stderr
    assert result.returncode == 1, log[-3000:]
    assert f"could not write {out / 'noise_rgba.mov'}: File too large: the disk is full" in log
    assert "frames" not in log.split("could not write")[1].splitlines()[0]
    assert list(out.iterdir()) == [], "no partial video and no temporary file"
