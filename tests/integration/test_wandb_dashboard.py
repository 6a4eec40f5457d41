"""W&B: an offline run names, groups and tags itself from the config and logs what was computed.

Offline runs write no readable summary, so the test watches the logger in-process: what the train
script hands to W&B must be the numbers Lightning computed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from p3m.tasks.train import train
from tests.conftest import tiny_data_overrides

LOSS_TERMS = ("ce_global", "ce_side2", "alpha_unknown", "laplacian_whole", "composition", "total")
SPLIT_METRICS = ("sad", "mse", "mad", "sad_t", "sad_fg", "sad_bg")


@pytest.mark.slow
def test_offline_run_logs_the_computed_numbers(
    compose_config: Callable[..., DictConfig],
    tiny_synthetic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_MODE", "offline")  # belt and braces: never reach the network
    seen: dict[str, Any] = {"metrics": [], "images": [], "artifacts": []}

    def log_hyperparams(self: WandbLogger, params: Any, *args: Any, **kwargs: Any) -> None:
        run = self.experiment
        seen.update(params=dict(params), name=run.name, group=run.group, job_type=run.job_type, tags=run.tags)
        seen["offline"] = run.offline
        seen["log_artifact"] = type(run).log_artifact
        monkeypatch.setattr(type(run), "log_artifact", record_artifact)
        original_hyperparams(self, params, *args, **kwargs)

    def record_artifact(run: Any, artifact: Any, *args: Any, aliases: Any = None, **kwargs: Any) -> Any:
        seen["artifacts"].append((artifact.type, list(aliases or [])))
        return seen["log_artifact"](run, artifact, *args, aliases=aliases, **kwargs)

    def log_metrics(self: WandbLogger, metrics: dict[str, float], step: int | None = None) -> None:
        seen["metrics"].append(dict(metrics))
        original_metrics(self, metrics, step)

    def log_image(self: WandbLogger, key: str, images: list[Any], *args: Any, **kwargs: Any) -> None:
        seen["images"].append((key, len(images)))
        original_image(self, key, images, *args, **kwargs)

    original_hyperparams, original_metrics, original_image = (
        WandbLogger.log_hyperparams,
        WandbLogger.log_metrics,
        WandbLogger.log_image,
    )
    monkeypatch.setattr(WandbLogger, "log_hyperparams", log_hyperparams)
    monkeypatch.setattr(WandbLogger, "log_metrics", log_metrics)
    monkeypatch.setattr(WandbLogger, "log_image", log_image)

    overrides = [
        *tiny_data_overrides(tiny_synthetic),
        "debug=limit",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "logger=wandb",
        "logger.wandb.log_model=true",  # the best checkpoint becomes an artifact (synced later)
        "task_name=dashboard",
    ]
    computed = train(compose_config("train", overrides))

    assert list((tmp_path / "run" / "wandb").glob("offline-run-*")), "no offline run directory"
    assert seen["offline"] is True
    assert seen["name"] == "dashboard-run" and seen["group"] == "dashboard" and seen["job_type"] == "train"
    assert {"backbone:resnet34", "privacy:ppt", "augmentation:paper", "loss:paper"} <= set(seen["tags"])
    params = seen["params"]
    assert params["model/params/total"] > 1_000_000 and params["model"]["optimizer"]["lr"] == 1e-5
    assert params["data/effective_batch_size"] == 2

    last: dict[str, float] = {}
    for row in seen["metrics"]:
        last.update(row)
    expected = [f"train/loss/{term}" for term in LOSS_TERMS]
    expected += [f"{split}/{name}" for split in ("val/p", "val/np") for name in SPLIT_METRICS]
    expected += ["val/p/sad_privacy", "val/np_minus_p/sad", "lr-Adam"]
    missing = [key for key in expected if key not in last]
    assert not missing, missing
    for key, value in computed.items():  # what W&B got is what Lightning computed
        assert last[key] == pytest.approx(float(value), rel=1e-6), key
    # a float32 difference of values near 1: its rounding is absolute, not relative to a small gap
    assert last["val/np_minus_p/sad"] == pytest.approx(last["val/np/sad"] - last["val/p/sad"], abs=1e-6)
    assert last["lr-Adam"] == pytest.approx(1e-5)

    assert ("panel/P3M-500-P", 10) in seen["images"]  # 2 images x 5 panels; P3M-500-NP is opt-in
    assert all(not key.endswith("P3M-500-NP") for key, _ in seen["images"])
    assert ("model", ["latest", "best"]) in seen["artifacts"]
