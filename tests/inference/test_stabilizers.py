"""The stabilisers: every frame back once and in order, what each one smooths, and restarts at cuts."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from p3m.inference.stabilizers import (
    STABILIZERS,
    SceneCutDetector,
    StabilizerSettings,
    create_stabilizer,
)
from p3m.utils.errors import SettingError

SIZE = 48


def textured_frame(shift: int = 0, seed: int = 0) -> np.ndarray:
    """A smooth random texture (grey levels 0..255 vary over ~8 px), shifted right by ``shift`` px."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (SIZE // 8 + 2, SIZE // 8 + 2)).astype(np.float32)
    texture = cv2.resize(small, (SIZE + 16, SIZE + 16), interpolation=cv2.INTER_CUBIC)
    grey = np.clip(texture[8 : 8 + SIZE, 8 - shift : 8 - shift + SIZE], 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def run(name: str, frames: list[np.ndarray], mattes: list[np.ndarray], **settings: float) -> list[np.ndarray]:
    """Push every frame and flush; checks each item comes back once, in order."""
    stabilizer = create_stabilizer(StabilizerSettings(stabilizer=name, **settings))
    out = []
    for index, (frame, matte) in enumerate(zip(frames, mattes, strict=True)):
        out += stabilizer.push(frame, matte, index)
    out += stabilizer.flush()
    assert [item for item, _ in out] == list(range(len(frames)))
    return [matte for _, matte in out]


@pytest.mark.parametrize("name", list(STABILIZERS))
def test_every_frame_comes_back_once_in_order_and_a_cut_restarts(name: str) -> None:
    still, other = textured_frame(seed=1), textured_frame(seed=2)
    frames = [still] * 4 + [other] * 3  # a cut before frame 4
    rng = np.random.default_rng(0)
    mattes = [rng.random((SIZE, SIZE)).astype(np.float32) for _ in frames]
    out = run(name, frames, mattes)
    np.testing.assert_array_equal(out[0], mattes[0])  # nothing to blend with
    # the first frame after the cut is as predicted, except ofd, which may use the frame after it
    if name != "ofd":
        np.testing.assert_array_equal(out[4], mattes[4])
    if name == "none":
        assert all(np.array_equal(a, b) for a, b in zip(out, mattes, strict=True))


def test_ofd_replaces_a_matte_that_disagrees_with_two_agreeing_neighbours() -> None:
    frame = textured_frame()
    before, after = np.zeros((SIZE, SIZE), np.float32), np.zeros((SIZE, SIZE), np.float32)
    after[:, SIZE // 2 :] = 0.5  # the neighbours disagree on the right half
    middle = np.ones((SIZE, SIZE), np.float32)
    out = run("ofd", [frame] * 3, [before, middle, after])
    np.testing.assert_array_equal(out[1][:, : SIZE // 2], 0.0)  # flicker: the neighbours' mean
    np.testing.assert_array_equal(out[1][:, SIZE // 2 :], 1.0)  # no agreement: kept
    np.testing.assert_array_equal(out[2], after)  # the last frame has one neighbour


def test_ofd_never_takes_a_neighbour_across_a_cut() -> None:
    frames = [textured_frame(seed=1), textured_frame(seed=1), textured_frame(seed=9)]
    mattes = [
        np.zeros((SIZE, SIZE), np.float32),
        np.ones((SIZE, SIZE), np.float32),
        np.zeros((SIZE, SIZE), np.float32),
    ]
    out = run("ofd", frames, mattes)
    np.testing.assert_array_equal(out[1], 1.0)  # its successor is in another shot


def test_ema_smooths_a_still_picture_and_leaves_moving_pixels_alone() -> None:
    frame = textured_frame()
    rng = np.random.default_rng(0)
    flicker = [np.clip(0.5 + rng.normal(0, 0.1, (SIZE, SIZE)), 0, 1).astype(np.float32) for _ in range(8)]
    out = run("ema", [frame] * 8, flicker, ema_weight=0.5)
    change = [np.abs(b - a).mean() for a, b in itertools.pairwise(out)]
    raw_change = [np.abs(b - a).mean() for a, b in itertools.pairwise(flicker)]
    assert np.mean(change[2:]) < 0.7 * np.mean(raw_change[2:])
    moved = textured_frame(seed=5)  # every pixel changes: no blending
    out = run("ema", [frame, moved], flicker[:2])
    changed = np.abs(moved.astype(float) - frame.astype(float))[:, :, 0] > 40
    np.testing.assert_allclose(out[1][changed], flicker[1][changed])


def test_flow_ema_follows_the_motion_instead_of_leaving_a_trail() -> None:
    """A textured scene pans 2 px per frame and the matte pans with it: warped along the flow, the
    previous matte lines up with the new one, so the blend stays sharp where an unwarped blend smears."""
    frames = [textured_frame(shift=2 * t) for t in range(5)]
    matte = np.zeros((SIZE, SIZE + 16), np.float32)
    matte[:, 20:36] = 1.0  # a bar that moves with the texture
    mattes = [matte[:, 8 - 2 * t : 8 - 2 * t + SIZE].copy() for t in range(5)]
    warped = run("flow_ema", frames, mattes, ema_weight=0.5, motion_threshold=60.0)
    unwarped = run("ema", frames, mattes, ema_weight=0.5, motion_threshold=60.0)
    inner = (slice(8, -8), slice(8, -8))  # away from the borders the flow cannot see
    error = [np.abs(w - m)[inner].mean() for w, m in zip(warped[1:], mattes[1:], strict=True)]
    smear = [np.abs(u - m)[inner].mean() for u, m in zip(unwarped[1:], mattes[1:], strict=True)]
    assert np.mean(error) < 0.5 * np.mean(smear)


def test_scene_cut_detector_sees_cuts_not_motion() -> None:
    detect = SceneCutDetector(threshold=30.0)
    grey = [textured_frame(shift=s)[:, :, 0].astype(np.float32) for s in (0, 2, 4)]
    assert detect(grey[0]) and not detect(grey[1]) and not detect(grey[2])
    assert detect(255 - grey[2])


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"stabilizer": "median"}, r"video.stabilizer='median': expected one of none \| ema"),
        ({"ema_weight": -0.1}, r"video.ema_weight=-0.1: expected a number in \[0, 1\]"),
        ({"cut_threshold": 0.0}, r"video.cut_threshold=0.0: expected a positive grey level"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], match: str) -> None:
    with pytest.raises(SettingError, match=match):
        StabilizerSettings(**settings)  # type: ignore[arg-type]
