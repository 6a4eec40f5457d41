"""p3m eval mode=video: the benchmark is built, every clip scored, reports, log keys test/video/<metric>."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from p3m.data.video_clips import find_clips
from p3m.inference.evaluate_video import evaluate_clips, prediction_folder_reader
from p3m.inference.stabilizers import StabilizerSettings
from p3m.tasks.eval import run_evaluation
from p3m.utils.errors import SettingError

METRICS = ["mad", "mse", "grad", "dtssd", "messddt"]
CLIPS = ["motion/0000", "motion/0001", "static/0000", "static/0001"]


def _config(compose_config: Callable[..., DictConfig], root: Path, *extra: str) -> DictConfig:
    overrides = [
        "mode=video",
        f"video.root={root}",
        "video.benchmark.clips=2",
        "video.benchmark.frames=4",
        "video.benchmark.size=[64,64]",
        "video.benchmark.portraits=null",  # synthetic subjects (the real ones: tests/data)
        "test_strategy=resize",
        "device=cpu",
        "logger=csv",
    ]
    return compose_config("eval", [*overrides, *extra])


def test_video_mode_builds_the_benchmark_and_reports_each_clip(
    compose_config: Callable[..., DictConfig], tiny_checkpoint: Path, tmp_path: Path
) -> None:
    root = tmp_path / "video_benchmark"
    cfg = _config(compose_config, root, f"ckpt_path={tiny_checkpoint}", "save_predictions=true")
    doc = run_evaluation(cfg)
    run = tmp_path / "run"

    assert list(doc) == ["video", "gap", "meta"] and doc["gap"] == {}
    assert json.loads((run / "metrics.json").read_text()) == doc
    assert list(doc["video"]["mean"]) == METRICS and sorted(doc["video"]["per_image"]) == CLIPS
    for name in METRICS:  # the mean is over clips
        values = [clip[name] for clip in doc["video"]["per_image"].values()]
        assert doc["video"]["mean"][name] == pytest.approx(sum(values) / len(values))
        assert all(v >= 0 for v in values)
    assert doc["video"]["mean"]["dtssd"] > 0  # a random network flickers
    meta = doc["meta"]
    assert meta["stabilizer"]["stabilizer"] == "none" and meta["frames"] == 16 and meta["clips"] == 4
    assert meta["scales"]["dtssd"].startswith("x 1e2") and meta["frames_per_second"] > 0
    with (run / "per_image.csv").open() as fh:
        assert [row["stem"] for row in csv.DictReader(fh)] == CLIPS
    logged = next(run.rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    assert {f"test/video/{name}" for name in METRICS} <= set(logged)

    # the saved mattes are a pred_dir in RobustVideoMatting's layout: scoring them gives the same numbers
    clips = find_clips(root)
    again = evaluate_clips(
        clips, prediction_folder_reader(run / "predictions"), StabilizerSettings(), METRICS
    )
    assert again.result.mean == pytest.approx(doc["video"]["mean"])

    # and a stabiliser on them smooths the flicker
    extra = [f"pred_dir={run / 'predictions'}", "video.stabilizer=ema", "video.ema_weight=0.9"]
    smoothed = run_evaluation(_config(compose_config, root, *extra))
    assert smoothed["meta"]["stabilizer"]["ema_weight"] == 0.9 and smoothed["meta"]["checkpoint"] is None
    assert smoothed["video"]["mean"]["dtssd"] < doc["video"]["mean"]["dtssd"]


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["video.metrics=[sad_t]"], r"video.metrics=\['sad_t'\]: .*these need a trimap: sad_t"),
        (["video.metrics=[mad,flicker]"], r"unknown: flicker"),
        (["mode=clips"], r"mode='clips': expected image or video"),
    ],
)
def test_bad_video_settings_are_refused_before_any_work(
    compose_config: Callable[..., DictConfig], tmp_path: Path, extra: list[str], match: str
) -> None:
    with pytest.raises(SettingError, match=match):
        run_evaluation(_config(compose_config, tmp_path / "absent", "ckpt_path=absent.ckpt", *extra))
    assert not (tmp_path / "absent").exists(), "no benchmark was written"
