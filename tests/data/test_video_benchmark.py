"""The synthetic video benchmark and the clip layout it shares with VideoMatte240K and YouTubeMatte."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from p3m.data.io import read_image, read_mask
from p3m.data.video_benchmark import ensure_video_benchmark
from p3m.data.video_clips import find_clips
from p3m.utils.errors import MissingInputError, UserError
from tests.fixtures import SAMPLES_DIR

PARAMS = {"clips": 2, "frames": 8, "size": (72, 64), "seed": 3}


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two clips per set, eight 72x64 frames each, real portraits alternating with synthetic ones."""
    portraits = SAMPLES_DIR / "validation" / "P3M-500-NP"
    return ensure_video_benchmark(tmp_path_factory.mktemp("bench") / "video", portraits=portraits, **PARAMS)


def _clip(root: Path, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    clip = next(c for c in find_clips(root) if c.name == name)
    return [read_image(p) for p in clip.frames], [read_mask(p) for p in clip.alphas]


def test_layout_is_the_video_matting_evaluation_sets(benchmark: Path) -> None:
    clips = find_clips(benchmark)
    assert [c.name for c in clips] == ["motion/0000", "motion/0001", "static/0000", "static/0001"]
    for clip in clips:
        assert [p.name for p in clip.frames] == [f"{t:04d}.png" for t in range(8)]
        assert [p.parent.name for p in (*clip.frames, *clip.alphas)] == ["com"] * 8 + ["pha"] * 8


def test_the_subject_moves_smoothly_and_the_background_moves_only_in_motion_clips(benchmark: Path) -> None:
    for name in ("static/0000", "motion/0000"):
        frames, alphas = _clip(benchmark, name)
        assert all(0 < a.mean() < 255 and (a > 0).any() and (a < 255).any() for a in alphas)
        steps = [np.abs(b.astype(int) - a).mean() for a, b in itertools.pairwise(alphas)]
        assert 0 < max(steps) < 40, "the alpha moves, a little at a time"
        background = (alphas[0] == 0) & (alphas[1] == 0)
        still = np.abs(frames[1].astype(int) - frames[0])[background].max()
        assert (still == 0) == (name.startswith("static"))


def test_the_second_motion_clip_cuts_to_another_shot_halfway(benchmark: Path) -> None:
    frames, _ = _clip(benchmark, "motion/0001")
    jumps = [np.abs(b.astype(int) - a).mean() for a, b in itertools.pairwise(frames)]
    cut = int(np.argmax(jumps))
    assert cut == 3 and jumps[cut] > 2 * max(jumps[:cut] + jumps[cut + 1 :])


def test_the_same_parameters_give_the_same_benchmark_and_others_are_refused(
    benchmark: Path, tmp_path: Path
) -> None:
    stamp = (benchmark / "static/0000/com/0000.png").stat().st_mtime_ns
    portraits = SAMPLES_DIR / "validation" / "P3M-500-NP"
    assert ensure_video_benchmark(benchmark, portraits=portraits, **PARAMS) == benchmark
    assert (benchmark / "static/0000/com/0000.png").stat().st_mtime_ns == stamp, "not rewritten"
    with pytest.raises(UserError, match=r"holds a benchmark made with other parameters; nothing was changed"):
        ensure_video_benchmark(benchmark, portraits=portraits, **(PARAMS | {"frames": 5}))
    synthetic = ensure_video_benchmark(tmp_path / "a", **PARAMS)
    again = ensure_video_benchmark(tmp_path / "b", **PARAMS)
    for name in ("com", "pha"):
        first = cv2.imread(str(synthetic / "motion/0000" / name / "0007.png"), cv2.IMREAD_UNCHANGED)
        second = cv2.imread(str(again / "motion/0000" / name / "0007.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(first, second)
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"holds other files"):
        ensure_video_benchmark(tmp_path / "user", **PARAMS)


def test_clip_folders_are_found_at_any_depth_and_must_pair_up(tmp_path: Path) -> None:
    frame = np.zeros((40, 40), np.uint8)
    for clip in ("youtubematte_motion/0000", "youtubematte_static/0003"):
        for sub in ("com", "har", "pha", "fgr"):
            (tmp_path / clip / sub).mkdir(parents=True)
            cv2.imwrite(str(tmp_path / clip / sub / "0000.png"), frame)
    clips = find_clips(tmp_path)
    assert [c.name for c in clips] == ["youtubematte_motion/0000", "youtubematte_static/0003"]
    assert clips[0].frames[0].parent.name == "har", "YouTubeMatte: the harmonised frames, as MatAnyone"
    assert [c.name for c in find_clips(tmp_path / "youtubematte_motion")] == ["0000"]
    assert [c.name for c in find_clips(tmp_path / "youtubematte_static" / "0003")] == ["0003"]
    cv2.imwrite(str(tmp_path / "youtubematte_motion/0000/har/0001.png"), frame)
    with pytest.raises(UserError, match=r"0001 is in .*youtubematte_motion/0000/har only"):
        find_clips(tmp_path)
    with pytest.raises(MissingInputError, match=r"holds no clip: expected <root>/<set>/<clip>/com/0000.png"):
        find_clips(tmp_path / "youtubematte_motion" / "0000" / "fgr")
