"""src/predict.py on a video: mp4 and PNG outputs, per-frame parity with photos, refusals, no partial file."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import DictConfig

import p3m.inference.predict_video
from p3m.inference.matting import composite, matte_uint8
from p3m.models import load_model
from p3m.models.test_time import infer_alpha
from p3m.tasks.predict import run_prediction
from p3m.utils.errors import SettingError, UserError
from tests.conftest import REPO_ROOT

FPS = 12.5
FRAMES = 6
BACKGROUND = (255, 0, 0)  # red: BGR written as RGB would come out blue


def _write_clip(path: Path, frames: list[np.ndarray], fourcc: str = "mp4v") -> Path:
    """A video of (H, W, 3) BGR frames at :data:`FPS`."""
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (width, height))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _read_frames(path: Path) -> list[np.ndarray]:
    """Every frame OpenCV decodes from a video, BGR."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while (frame := capture.read())[0]:
        frames.append(frame[1])
    capture.release()
    return frames


@pytest.fixture
def clip(tiny_synthetic: Path, tmp_path: Path) -> Path:
    """Six 96x64 frames of a synthetic portrait panning sideways, mp4v."""
    images = sorted((tiny_synthetic / "validation" / "P3M-500-NP" / "original_image").iterdir())
    portrait = cv2.imread(str(images[0]), cv2.IMREAD_COLOR)
    frames = [np.roll(portrait, 4 * i, axis=1) for i in range(FRAMES)]
    return _write_clip(tmp_path / "clip.mp4", frames)


def _config(compose_config: Callable[..., DictConfig], ckpt: Path, video: Path, out: Path, *extra: str):
    overrides = [f"ckpt_path={ckpt}", f"input={video}", f"output={out}", "test_strategy=resize", "device=cpu"]
    return compose_config("predict", [*overrides, *extra])


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _image_path_mattes(checkpoint: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Each frame's 8-bit matte as the photo path computes it: infer_alpha (RESIZE) + matte_uint8."""
    net = load_model(checkpoint)
    mattes = []
    for frame in frames:
        rgb = torch.from_numpy(np.ascontiguousarray(frame[:, :, ::-1])).permute(2, 0, 1)
        mattes.append(matte_uint8(infer_alpha(net, rgb, "resize", "paper").alpha.numpy()))
    return mattes


def test_mp4_outputs_keep_frame_rate_count_and_size(
    compose_config: Callable[..., DictConfig], clip: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    background = f"video_background=[{','.join(map(str, BACKGROUND))}]"
    summary = run_prediction(_config(compose_config, tiny_checkpoint, clip, out, background))
    assert summary.written == [clip] and not summary.failed and summary.what == "videos"
    assert _files(out) == ["clip_alpha.mp4", "clip_composite.mp4"], "no temporary file is left"

    frames = _read_frames(clip)
    mattes = _image_path_mattes(tiny_checkpoint, frames)
    for name in ("clip_alpha.mp4", "clip_composite.mp4"):
        capture = cv2.VideoCapture(str(out / name))
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
        capture.release()
        written = _read_frames(out / name)
        assert len(written) == FRAMES
        assert all(frame.shape == frames[0].shape for frame in written)
    # lossy, but the same pictures: the matte, and the frame over a red (not blue) background
    alpha_video, composite_video = (
        _read_frames(out / "clip_alpha.mp4"),
        _read_frames(out / "clip_composite.mp4"),
    )
    for frame, matte, alpha_frame, composite_frame in zip(
        frames, mattes, alpha_video, composite_video, strict=True
    ):
        assert 0 < matte.mean() < 255  # a real matte, so the background shows
        assert np.abs(alpha_frame[:, :, 0].astype(int) - matte).mean() < 8
        expected = composite(frame[:, :, ::-1], matte, BACKGROUND)[:, :, ::-1]
        assert np.abs(composite_frame.astype(int) - expected).mean() < 8
        swapped = composite(frame[:, :, ::-1], matte, BACKGROUND[::-1])[:, :, ::-1]
        assert (
            np.abs(composite_frame.astype(int) - swapped).mean()
            > 2 * np.abs(composite_frame.astype(int) - expected).mean()
        )


def test_frames_mode_writes_the_image_paths_lossless_mattes(
    compose_config: Callable[..., DictConfig], clip: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_prediction(_config(compose_config, tiny_checkpoint, clip, out, "video_output=frames"))
    names = [f"{i:06d}.png" for i in range(FRAMES)]
    assert _files(out) == [f"clip/{sub}/{name}" for sub in ("alpha", "rgba") for name in names]

    frames = _read_frames(clip)
    for name, frame, matte in zip(names, frames, _image_path_mattes(tiny_checkpoint, frames), strict=True):
        rgba = cv2.imread(str(out / "clip" / "rgba" / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(rgba[:, :, :3], frame)  # the decoded frame, unchanged
        np.testing.assert_array_equal(rgba[:, :, 3], matte)  # bit for bit the photo path's matte
        np.testing.assert_array_equal(
            cv2.imread(str(out / "clip" / "alpha" / name), cv2.IMREAD_UNCHANGED), matte
        )


@pytest.mark.parametrize(
    ("mode", "existing"), [("mp4", "clip_composite.mp4"), ("frames", "clip/rgba/000009.png")]
)
def test_existing_outputs_are_refused_unless_overwrite(
    compose_config: Callable[..., DictConfig],
    clip: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    mode: str,
    existing: str,
) -> None:
    """Refused before the model loads (the checkpoint does not exist); a PNG of an earlier, longer
    sequence counts too, or the two sequences would mix."""
    out = tmp_path / "out"
    (out / existing).parent.mkdir(parents=True)
    (out / existing).write_bytes(b"the user's earlier output")
    absent = tmp_path / "absent.ckpt"
    with pytest.raises(UserError, match=r"1 output file\(s\) already exist .*set overwrite=true"):
        run_prediction(_config(compose_config, absent, clip, out, f"video_output={mode}"))
    assert _files(out) == [existing], "nothing was written"

    run_prediction(
        _config(compose_config, tiny_checkpoint, clip, out, f"video_output={mode}", "overwrite=true")
    )
    if mode == "mp4":
        assert len(_read_frames(out / existing)) == FRAMES
    else:
        assert len(_files(out)) == 2 * FRAMES + 1  # the stale frame is not ours to delete


@pytest.mark.parametrize("case", ["not a video", "no frames"])
def test_unreadable_video_is_refused_naming_the_file(
    compose_config: Callable[..., DictConfig], tmp_path: Path, case: str
) -> None:
    video = tmp_path / "clip.mp4"
    if case == "not a video":
        video.write_bytes(b"\x00" * 4096)
    else:
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (64, 96))
        writer.release()
    out = tmp_path / "out"
    with pytest.raises(UserError, match=rf"input={video}: .*(cannot open it as a video|no frame)"):
        run_prediction(_config(compose_config, tmp_path / "absent.ckpt", video, out))
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["video_output=gif"], r"video_output='gif': expected one of mp4 \| frames"),
        (["video_background=[0,255]"], r"video_background=\[0, 255\]: expected an RGB list"),
        (["video_background=[0,256,0]"], r"expected an RGB list of three integers in 0\.\.255"),
    ],
)
def test_bad_video_settings_are_refused_before_the_model_loads(
    compose_config: Callable[..., DictConfig], clip: Path, tmp_path: Path, extra: list[str], match: str
) -> None:
    with pytest.raises(SettingError, match=match):
        run_prediction(_config(compose_config, tmp_path / "absent.ckpt", clip, tmp_path / "out", *extra))


def test_a_video_among_other_inputs_is_refused(
    compose_config: Callable[..., DictConfig], clip: Path, tmp_path: Path
) -> None:
    _write_clip(tmp_path / "second.avi", _read_frames(clip), fourcc="MJPG")
    with pytest.raises(UserError, match=r"2 video\(s\) among 2 files .*input=clip\.mp4"):
        run_prediction(
            _config(compose_config, tmp_path / "absent.ckpt", Path(f"{tmp_path}/*"), tmp_path / "out")
        )


def test_interrupted_run_leaves_no_partial_video(
    compose_config: Callable[..., DictConfig],
    clip: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = p3m.inference.predict_video.predict_matte
    calls = []

    def interrupted_at_frame_3(*args: object) -> np.ndarray:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(p3m.inference.predict_video, "predict_matte", interrupted_at_frame_3)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_prediction(_config(compose_config, tiny_checkpoint, clip, out))
    assert _files(out) == [], "neither a partial video nor a temporary file"


def test_damaged_stream_writes_and_reports_the_frames_it_could_read(
    compose_config: Callable[..., DictConfig],
    clip: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An AVI cut short still announces all its frames in its header; only the first ones decode."""
    whole = _write_clip(tmp_path / "whole.avi", _read_frames(clip), fourcc="MJPG").read_bytes()
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(whole[: len(whole) * 2 // 3])
    readable = len(_read_frames(damaged))
    assert 0 < readable < FRAMES

    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        summary = run_prediction(_config(compose_config, tiny_checkpoint, damaged, out))
    assert summary.written == [damaged]
    assert f"announces {FRAMES} frames, {readable} could be read" in caplog.text
    assert len(_read_frames(out / "damaged_alpha.mp4")) == readable


@pytest.mark.slow
def test_cli_predicts_a_video(clip: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable,
        "src/predict.py",
        f"ckpt_path={tiny_checkpoint}",
        f"input={clip}",
        f"output={out}",
        "test_strategy=hybrid",
        f"hydra.run.dir={tmp_path / 'log'}",
    ]
    env = os.environ | {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert f"wrote the mattes of {FRAMES} frames to {out / 'clip_alpha.mp4'}" in log
    again = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "2 output file(s) already exist" in again.stdout + again.stderr
