"""src/eval.py end to end on the tiny synthetic dataset: reports, saved predictions, pred_dir, splits."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
from omegaconf import DictConfig, open_dict

from p3m.inference.report import results_document
from p3m.metrics import METRIC_NAMES, TRIMAP_METRIC_NAMES
from p3m.metrics.evaluation import SplitResult
from p3m.tasks.eval import run_evaluation, trainer_device_settings
from tests.cli import run_python
from tests.conftest import REPO_ROOT, TINY_SYNTHETIC
from tests.inference.conftest import eval_data_overrides

SPLITS = ("P3M-500-P", "P3M-500-NP")
GAP = "test/np_minus_p"  # P3M-500-NP minus P3M-500-P, keyed as in the logs (test/np_minus_p/sad)
WHOLE_IMAGE = [n for n in METRIC_NAMES if n not in TRIMAP_METRIC_NAMES]


def _stems(root: Path, split: str) -> list[str]:
    folder = "blurred_image" if split == "P3M-500-P" else "original_image"
    return sorted(p.stem for p in (root / "validation" / split / folder).iterdir())


def test_checkpoint_evaluation_writes_json_csv_and_predictions(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    overrides = [f"ckpt_path={tiny_checkpoint}", "test_strategy=resize", "save_predictions=true"]
    doc = run_evaluation(compose_config("eval", [*eval_data_overrides(tiny_synthetic), *overrides]))
    run = tmp_path / "run"

    assert list(doc) == [*SPLITS, "gap", "meta"]
    assert json.loads((run / "metrics.json").read_text()) == doc
    for split in SPLITS:
        # the synthetic P3M-500-P has face masks (SAD inside them: sad_privacy), P3M-500-NP has none
        with_faces = ["sad_privacy"] if split == "P3M-500-P" else []
        assert list(doc[split]["mean"]) == [*METRIC_NAMES, *with_faces]
        assert sorted(doc[split]["per_image"]) == _stems(tiny_synthetic, split)
        for name in METRIC_NAMES:  # the mean is the mean of the per-image values
            values = [v[name] for v in doc[split]["per_image"].values()]
            assert doc[split]["mean"][name] == pytest.approx(sum(values) / len(values))
    gap = doc["gap"][GAP]
    assert list(gap) == list(METRIC_NAMES)
    for name in METRIC_NAMES:
        assert gap[name] == pytest.approx(doc["P3M-500-NP"]["mean"][name] - doc["P3M-500-P"]["mean"][name])
    meta = doc["meta"]
    assert meta["checkpoint"] == str(tiny_checkpoint) and meta["backbone"] == "resnet34"
    assert (meta["strategy"], meta["resize_mode"]) == ("resize", "paper")
    assert {"python", "torch", "torchmetrics"} <= set(meta["versions"])

    rows = list(csv.DictReader((run / "per_image.csv").open()))
    assert len(rows) == 2 * TINY_SYNTHETIC["num_test"]
    assert list(rows[0]) == ["split", "stem", *METRIC_NAMES, "sad_privacy"]
    first = rows[0]
    assert float(first["sad"]) == pytest.approx(doc[first["split"]]["per_image"][first["stem"]]["sad"])

    height, width = TINY_SYNTHETIC["size"]
    for split in SPLITS:
        saved = sorted((run / "predictions" / split).glob("*.png"))
        assert [p.stem for p in saved] == _stems(tiny_synthetic, split)
        matte = cv2.imread(str(saved[0]), cv2.IMREAD_UNCHANGED)
        assert matte.shape == (height, width) and matte.dtype == "uint8"

    # The saved mattes, scored without a model (pred_dir/<split>/<stem>.png), give the same numbers up
    # to their 8-bit rounding: SAD moves by at most H * W * 0.5 / 255 / 1000.
    shutil.move(run, tmp_path / "model_run")
    predictions = tmp_path / "model_run" / "predictions"
    rescored = run_evaluation(
        compose_config("eval", [*eval_data_overrides(tiny_synthetic), f"pred_dir={predictions}"])
    )
    assert rescored["meta"]["pred_dir"] == str(predictions) and rescored["meta"]["checkpoint"] is None
    bound = height * width * 0.5 / 255 / 1000
    for split in SPLITS:
        for stem, values in rescored[split]["per_image"].items():
            assert values["sad"] == pytest.approx(doc[split]["per_image"][stem]["sad"], abs=bound)

    # ... and from a flat folder (pred_dir/<stem>.png), as other methods often ship them
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in predictions.glob("*/*.png"):
        shutil.copy(path, flat / path.name)
    shutil.rmtree(tmp_path / "run")
    flat_doc = run_evaluation(
        compose_config("eval", [*eval_data_overrides(tiny_synthetic), f"pred_dir={flat}"])
    )
    for split in SPLITS:
        assert flat_doc[split]["mean"] == rescored[split]["mean"]


def test_whole_image_only_split_has_no_trimap_metrics(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    # A RealWorldPortrait-636-like layout elsewhere on disk: image/ and alpha/, no trimaps.
    rwp = tmp_path / "rwp"
    for sub in ("image", "alpha"):
        (rwp / sub).mkdir(parents=True)
    source = tiny_synthetic / "validation" / "P3M-500-NP"
    for image in sorted((source / "original_image").iterdir()):
        shutil.copy(image, rwp / "image" / image.name)
        shutil.copy(source / "mask" / f"{image.stem}.png", rwp / "alpha" / f"{image.stem}.png")
    cfg = compose_config(
        "eval", [*eval_data_overrides(tiny_synthetic), f"ckpt_path={tiny_checkpoint}", "test_strategy=resize"]
    )
    with open_dict(cfg):
        cfg.data.eval_splits.append(
            {
                "name": "RWP-636",
                "prefix": "rwp",
                "image_dir": str(rwp / "image"),
                "mask_dir": str(rwp / "alpha"),
            }
        )
    doc = run_evaluation(cfg)

    assert list(doc) == [*SPLITS, "RWP-636", "gap", "meta"]
    assert list(doc["RWP-636"]["mean"]) == WHOLE_IMAGE
    assert all(list(v) == WHOLE_IMAGE for v in doc["RWP-636"]["per_image"].values())
    assert list(doc["gap"]) == [GAP]  # an extra split has no gap unless it declares gap_to
    # the same images and mattes as P3M-500-NP: the whole-image numbers agree
    for name in WHOLE_IMAGE:
        assert doc["RWP-636"]["mean"][name] == pytest.approx(doc["P3M-500-NP"]["mean"][name])
    header = next(csv.reader((tmp_path / "run" / "per_image.csv").open()))
    assert header == ["split", "stem", *METRIC_NAMES, "sad_privacy"]  # blank cells where not computed


def test_backbone_is_detected_or_must_match(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tiny_checkpoint: Path
) -> None:
    base = [*eval_data_overrides(tiny_synthetic), f"ckpt_path={tiny_checkpoint}", "test_strategy=resize"]
    doc = run_evaluation(compose_config("eval", [*base, "backbone=resnet34", "metrics=[sad]"]))
    assert doc["meta"]["backbone"] == "resnet34" and list(doc["P3M-500-P"]["mean"]) == ["sad"]
    with pytest.raises(ValueError, match="holds a resnet34 P3M-Net, not swin: set backbone=auto"):
        run_evaluation(compose_config("eval", [*base, "backbone=swin"]))


def test_missing_inputs_raise_actionable_errors(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"ckpt_path=PATH .* or pred_dir=DIR"):
        run_evaluation(compose_config("eval", eval_data_overrides(tiny_synthetic)))
    empty = tmp_path / "empty_predictions"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no prediction for P3M-500-P/syn_valp_0000: looked for"):
        run_evaluation(compose_config("eval", [*eval_data_overrides(tiny_synthetic), f"pred_dir={empty}"]))


@pytest.mark.slow
def test_cli_evaluates_and_logs_a_per_image_table_to_offline_wandb(
    tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    run = tmp_path / "cli_run"
    env = os.environ | {
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(tmp_path),
    }
    env.pop("WANDB_API_KEY", None)
    result = run_python(
        [
            sys.executable,
            "src/eval.py",
            *eval_data_overrides(tiny_synthetic),
            f"ckpt_path={tiny_checkpoint}",
            "backbone=auto",
            "test_strategy=hybrid",
            "metrics=[sad,mse,sad_t]",
            "logger=wandb",
            f"hydra.run.dir={run}",
        ],
        cwd=REPO_ROOT,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((run / "metrics.json").read_text())
    assert doc["meta"]["strategy"] == "hybrid" and list(doc["P3M-500-P"]["mean"]) == ["sad", "mse", "sad_t"]
    assert "test/np_minus_p" in result.stdout  # the printed table
    tables = glob.glob(
        str(run / "wandb" / "offline-run-*" / "files" / "media" / "table" / "test" / "*.table.json")
    )
    assert len(tables) == 1, sorted(str(p) for p in run.rglob("*"))[:40]
    table = json.loads(Path(tables[0]).read_text())
    assert table["columns"] == ["split", "stem", "sad", "mse", "sad_t"]
    assert len(table["data"]) == 2 * TINY_SYNTHETIC["num_test"]
    # the run's config and tags name the backbone read from the checkpoint, like a training run's
    # (offline, wandb keeps them in its binary record log until `wandb sync`; no reader ships with it)
    records = next(Path(tables[0]).parents[4].glob("run-*.wandb")).read_bytes()
    assert b'{"name":"resnet34","requested":"auto"}' in records
    assert json.dumps(str(tiny_checkpoint)).encode() in records and b'"hybrid"' in records
    assert b"backbone:resnet34" in records and b"backbone:auto" not in records


def test_reserved_split_names_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        results_document([SplitResult("meta")], {}, {})


def test_device_maps_onto_the_trainer(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path
) -> None:
    def settings(*overrides: str) -> dict:
        return trainer_device_settings(compose_config("eval", list(overrides)))

    assert settings("device=auto", "trainer.devices=4") == {}  # the trainer decides
    assert settings("device=cpu") == {"accelerator": "cpu"}
    assert settings("device=cuda:1") == {"accelerator": "gpu", "devices": [1]}
    with pytest.raises(ValueError, match=r"device=cuda:1 names one device but trainer.devices=2"):
        settings("device=cuda:1", "trainer.devices=2")
    with pytest.raises(ValueError, match=r"device=cpu but trainer.accelerator=gpu: set one of them"):
        settings("device=cpu", "trainer.accelerator=gpu")
    with pytest.raises(ValueError, match=r"device='tpu:x': expected auto, cpu, cuda or cuda:N"):
        settings("device=tpu:x")
    # an ONNX session is not placed by Lightning: one device only, refused before anything loads
    onnx = ["runtime=onnx", "onnx_path=absent.onnx", "trainer.accelerator=cpu", "trainer.devices=2"]
    data = [o for o in eval_data_overrides(tiny_synthetic) if o != "device=cpu"]
    with pytest.raises(ValueError, match=r"runtime=onnx runs on one device, not 2"):
        run_evaluation(compose_config("eval", [*data, *onnx]))


def test_precision_and_channels_last_evaluate_through_the_same_path(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    base = [*eval_data_overrides(tiny_synthetic), f"ckpt_path={tiny_checkpoint}", "test_strategy=resize"]
    fp32 = run_evaluation(compose_config("eval", [*base, "metrics=[sad]"]))
    shutil.rmtree(tmp_path / "run")
    fast = run_evaluation(
        compose_config("eval", [*base, "metrics=[sad]", "precision=bf16", "channels_last=true"])
    )
    assert (fast["meta"]["precision"], fast["meta"]["channels_last"]) == ("bf16", True)
    for split in SPLITS:
        assert fast[split]["per_image"].keys() == fp32[split]["per_image"].keys()
        # bf16 moves the mattes (README: previews only) but not into another regime
        assert fast[split]["mean"]["sad"] == pytest.approx(fp32[split]["mean"]["sad"], rel=0.2)
    moved = [
        fast[s]["per_image"][k]["sad"] != v["sad"] for s in SPLITS for k, v in fp32[s]["per_image"].items()
    ]
    assert any(moved)  # the settings reached the network
