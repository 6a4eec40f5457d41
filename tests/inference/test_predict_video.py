"""p3m predict on a video: every output read back (frames, alpha, size, timestamps, audio), per-frame
parity with photos, stabilisers, refusals, no partial file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import p3m.inference.predict_video
from p3m.inference.matting import composite, matte_uint8
from p3m.models import load_model
from p3m.models.test_time import infer_alpha
from p3m.tasks.predict import run_prediction
from p3m.utils.errors import SettingError, UserError
from tests.conftest import REPO_ROOT
from tests.inference.clips import read_clip, write_clip

FRAMES = 6
TIMES_MS = [0, 80, 160, 200, 360, 440]  # variable frame rate: the outputs keep these times
BACKGROUND = (255, 0, 0)  # red: a channel-order mistake would show blue


def _portrait_frames(tiny_synthetic: Path) -> list[np.ndarray]:
    """Six 96x64 RGB frames of a synthetic portrait panning sideways."""
    images = sorted((tiny_synthetic / "validation" / "P3M-500-NP" / "original_image").iterdir())
    portrait = cv2.cvtColor(cv2.imread(str(images[0]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return [np.roll(portrait, 4 * i, axis=1) for i in range(FRAMES)]


@pytest.fixture
def clip(tiny_synthetic: Path, tmp_path: Path) -> Path:
    """The panning portrait at :data:`TIMES_MS`, H.264 with an AAC tone."""
    return write_clip(tmp_path / "clip.mp4", _portrait_frames(tiny_synthetic), TIMES_MS)


def _overrides(ckpt: Path, video: Path, out: Path) -> list[str]:
    return [f"ckpt_path={ckpt}", f"input={video}", f"output={out}", "test_strategy=resize", "device=cpu"]


def _config(compose_config: Callable[..., DictConfig], ckpt: Path, video: Path, out: Path, *extra: str):
    return compose_config("predict", [*_overrides(ckpt, video, out), *extra])


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _photo_mattes(checkpoint: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Each frame's 8-bit matte as the photo path computes it: infer_alpha (RESIZE) + matte_uint8."""
    net = load_model(checkpoint)
    mattes = []
    for frame in frames:
        rgb = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
        mattes.append(matte_uint8(infer_alpha(net, rgb, "resize", "paper").alpha.numpy()))
    return mattes


def _mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


@dataclass(frozen=True)
class EveryOutput:
    out: Path
    clip: Path
    frames: list[np.ndarray]
    """The input's decoded frames."""
    mattes: list[np.ndarray]
    """Their 8-bit mattes as the photo path computes them."""


@pytest.fixture(scope="module")
def every_output(
    tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> EveryOutput:
    """One run writing every ``video_output`` of the panning portrait."""
    root = tmp_path_factory.mktemp("every_output")
    clip = write_clip(root / "clip.mp4", _portrait_frames(tiny_synthetic), TIMES_MS)
    out = root / "out"
    background = f"video_background=[{','.join(map(str, BACKGROUND))}]"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        overrides = ["video_output=[mp4,webm,prores,frames]", background, f"hydra.run.dir={root / 'run'}"]
        cfg = compose(
            "predict", [*_overrides(tiny_checkpoint, clip, out), *overrides], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    summary = run_prediction(cfg)
    assert summary.written == [clip] and not summary.failed and summary.what == "videos"
    frames = read_clip(clip)[0]
    return EveryOutput(out, clip, frames, _photo_mattes(tiny_checkpoint, frames))


def test_every_output_is_written_in_one_pass_and_no_temporary_file_is_left(
    every_output: EveryOutput,
) -> None:
    names = [f"{i:06d}.png" for i in range(FRAMES)]
    pngs = [f"clip/{sub}/{name}" for sub in ("alpha", "rgba") for name in names]
    videos = ["clip_alpha.mp4", "clip_composite.mp4", "clip_rgba.mov", "clip_rgba.webm"]
    assert _files(every_output.out) == sorted([*pngs, *videos])


def test_mp4_outputs_keep_times_audio_and_size(
    every_output: EveryOutput,
) -> None:
    out, frames, mattes = every_output.out, every_output.frames, every_output.mattes
    alpha_video, alpha_times, alpha_facts = read_clip(out / "clip_alpha.mp4")
    composite_video, composite_times, composite_facts = read_clip(out / "clip_composite.mp4")
    for facts in (alpha_facts, composite_facts):
        assert facts["codec"] == "h264" and facts["audio"] == ["aac"]
        assert (facts["height"], facts["width"]) == (96, 64)
    assert alpha_times == composite_times == pytest.approx([t / 1000 for t in TIMES_MS])
    for frame, matte, alpha_frame, composite_frame in zip(
        frames, mattes, alpha_video, composite_video, strict=True
    ):
        assert 0 < matte.mean() < 255  # a real matte, so the background shows
        assert _mean_error(alpha_frame[:, :, 0], matte) < 3
        expected = composite(frame, matte, BACKGROUND)
        assert _mean_error(composite_frame, expected) < 8  # 4:2:0 chroma: colour edges blur
        swapped = composite(frame, matte, BACKGROUND[::-1])
        assert _mean_error(composite_frame, swapped) > 2 * _mean_error(composite_frame, expected)


def test_webm_and_prores_carry_the_matte_as_alpha(
    every_output: EveryOutput,
) -> None:
    """Read back (WebM through libvpx, as browsers do) with their alpha, times and audio."""
    out, frames, mattes = every_output.out, every_output.frames, every_output.mattes
    for name, codec, audio in (("clip_rgba.webm", "vp9", "opus"), ("clip_rgba.mov", "prores", "aac")):
        rgba, rgba_times, facts = read_clip(out / name, alpha=True)
        assert facts["codec"] == codec and facts["audio"] == [audio], name  # AAC re-encoded for WebM
        assert rgba_times == pytest.approx([t / 1000 for t in TIMES_MS], abs=1e-3), name
        assert len(rgba) == FRAMES and rgba[0].shape == (96, 64, 4)
        for frame, matte, got in zip(frames, mattes, rgba, strict=True):
            assert _mean_error(got[:, :, 3], matte) < 3, name
            assert _mean_error(got[:, :, :3], frame) < 10, name  # VP9 4:2:0 on a tiny noisy frame


def test_frames_mode_writes_the_image_paths_lossless_mattes(
    every_output: EveryOutput,
) -> None:
    out, frames, mattes = every_output.out, every_output.frames, every_output.mattes
    for index, (frame, matte) in enumerate(zip(frames, mattes, strict=True)):
        name = f"{index:06d}.png"
        rgba = cv2.imread(str(out / "clip" / "rgba" / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(rgba[:, :, 2::-1], frame)  # the decoded frame, unchanged
        np.testing.assert_array_equal(rgba[:, :, 3], matte)  # bit for bit the photo path's matte
        np.testing.assert_array_equal(
            cv2.imread(str(out / "clip" / "alpha" / name), cv2.IMREAD_UNCHANGED), matte
        )


def test_batched_frames_are_the_photo_mattes_within_rounding(
    compose_config: Callable[..., DictConfig],
    every_output: EveryOutput,
    tiny_checkpoint: Path,
    tmp_path: Path,
) -> None:
    """video.batch_size=4 over 6 frames (a batch of 4, then 2): every frame once, in order, each matte
    the photo path's within float rounding (one grey level at most)."""
    out = tmp_path / "out"
    extra = ("video_output=frames", "video.batch_size=4")
    run_prediction(_config(compose_config, tiny_checkpoint, every_output.clip, out, *extra))
    assert len(_files(out)) == 2 * FRAMES
    for index, matte in enumerate(every_output.mattes):
        batched = cv2.imread(str(out / "clip" / "alpha" / f"{index:06d}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_allclose(batched, matte, rtol=0, atol=1)


def test_odd_sizes_are_padded_in_h264_and_kept_in_webm(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    frames = [cv2.resize(frame, (65, 97)) for frame in _portrait_frames(tiny_synthetic)[:3]]
    odd = write_clip(tmp_path / "odd.mp4", frames, codec="libx264rgb", audio_seconds=None)
    out = tmp_path / "out"
    run_prediction(_config(compose_config, tiny_checkpoint, odd, out, "video_output=[mp4,webm]"))
    composite_video, _, facts = read_clip(out / "odd_composite.mp4")
    assert (facts["height"], facts["width"]) == (98, 66) and facts["audio"] == []
    # the padding repeats the last row and column instead of cutting them
    assert _mean_error(composite_video[0][97], composite_video[0][96]) < 3
    assert _mean_error(composite_video[0][:, 65], composite_video[0][:, 64]) < 3
    rgba, _, facts = read_clip(out / "odd_rgba.webm", alpha=True)
    assert (facts["height"], facts["width"]) == (97, 65) and len(rgba) == 3


def test_a_stabilizer_changes_the_mattes_not_the_frames(
    compose_config: Callable[..., DictConfig],
    every_output: EveryOutput,
    tiny_checkpoint: Path,
    tmp_path: Path,
) -> None:
    """ofd holds one frame back: still every frame, in order, once; some mattes are smoothed."""
    out = tmp_path / "out"
    extra = ("video_output=frames", "video.stabilizer=ofd", "video.ofd_threshold=0.02")
    run_prediction(_config(compose_config, tiny_checkpoint, every_output.clip, out, *extra))
    assert len(_files(out)) == 2 * FRAMES
    smoothed = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(out.glob("clip/alpha/*"))]
    changed = [not np.array_equal(a, b) for a, b in zip(every_output.mattes, smoothed, strict=True)]
    assert not changed[0] and not changed[-1], "the first and last frame have one neighbour: kept"
    assert any(changed)


@pytest.mark.parametrize(
    ("mode", "existing"),
    [("mp4", "clip_composite.mp4"), ("[webm,prores]", "clip_rgba.mov"), ("frames", "clip/rgba/000009.png")],
)
def test_existing_outputs_are_refused(
    compose_config: Callable[..., DictConfig], clip: Path, tmp_path: Path, mode: str, existing: str
) -> None:
    """Refused before the model loads (the checkpoint does not exist); a PNG of an earlier, longer
    sequence counts too, or the two sequences would mix."""
    out = tmp_path / "out"
    (out / existing).parent.mkdir(parents=True)
    (out / existing).write_bytes(b"the user's earlier output")
    with pytest.raises(UserError, match=r"1 output file\(s\) already exist .*set overwrite=true"):
        run_prediction(_config(compose_config, tmp_path / "absent.ckpt", clip, out, f"video_output={mode}"))
    assert _files(out) == [existing], "nothing was written"


def test_overwrite_replaces_earlier_outputs(
    compose_config: Callable[..., DictConfig], clip: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    for existing in ("clip_rgba.webm", "clip/rgba/000009.png"):
        (out / existing).parent.mkdir(parents=True, exist_ok=True)
        (out / existing).write_bytes(b"the user's earlier output")
    extra = ("video_output=[webm,frames]", "overwrite=true")
    run_prediction(_config(compose_config, tiny_checkpoint, clip, out, *extra))
    assert len(read_clip(out / "clip_rgba.webm")[0]) == FRAMES
    assert len(_files(out)) == 2 * FRAMES + 2  # the stale frame is not ours to delete


@pytest.mark.parametrize("case", ["not a video", "no frames"])
def test_unreadable_video_is_refused_naming_the_file(
    compose_config: Callable[..., DictConfig], tmp_path: Path, case: str
) -> None:
    video = tmp_path / "clip.mp4"
    if case == "not a video":
        video.write_bytes(b"\x00" * 4096)
    else:
        write_clip(video, [], [], audio_seconds=0.2)  # an audio track, no frame
    out = tmp_path / "out"
    with pytest.raises(UserError, match=rf"input={video}: .*(cannot read it as a video|no (frame|video))"):
        run_prediction(_config(compose_config, tmp_path / "absent.ckpt", video, out))
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["video_output=gif"], r"video_output=gif: expected one of mp4 \| webm \| prores \| frames"),
        (["video_output=[webm,webm]"], r"or a list of them without repeats"),
        (["video_background=[0,255]"], r"video_background=\[0, 255\]: expected an RGB list"),
        (["video_background=[0,256,0]"], r"expected an RGB list of three integers in 0\.\.255"),
        (["video.stabilizer=median"], r"video.stabilizer='median': expected one of none \| ema \|"),
        (["video.ema_weight=1.5"], r"video.ema_weight=1.5: expected a number in \[0, 1\]"),
        (["video.batch_size=0"], r"video.batch_size=0: expected a positive integer"),
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
    (tmp_path / "second.mkv").write_bytes(clip.read_bytes())
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
    real = p3m.inference.predict_video.predict_mattes
    calls = []

    def interrupted_at_frame_3(*args: object) -> np.ndarray:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(p3m.inference.predict_video, "predict_mattes", interrupted_at_frame_3)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_prediction(_config(compose_config, tiny_checkpoint, clip, out, "video_output=[mp4,webm]"))
    assert _files(out) == [], "neither a partial video nor a temporary file"


def test_damaged_stream_writes_and_reports_the_frames_it_could_read(
    compose_config: Callable[..., DictConfig],
    clip: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An MJPEG AVI cut short still announces all its frames in its header; only the first ones decode."""
    whole = tmp_path / "whole.avi"
    write_clip(whole, read_clip(clip)[0], codec="mjpeg", audio_seconds=None)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    readable = len(read_clip(damaged)[0])
    assert 0 < readable < FRAMES

    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        summary = run_prediction(_config(compose_config, tiny_checkpoint, damaged, out))
    assert summary.written == [damaged]
    assert f"announces {FRAMES} frames, {readable} could be read" in caplog.text
    assert len(read_clip(out / "damaged_alpha.mp4")[0]) == readable
