"""The W&B image panel: face-blurred splits by default, unblurred faces only when asked, offline runs work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hydra
import lightning as L
import numpy as np
import pytest
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from p3m.callbacks.wandb_images import WandbImagePanel
from tests.conftest import TINY_SYNTHETIC, tiny_data_overrides


@pytest.mark.slow
def test_panel_logs_blurred_splits_and_unblurred_ones_only_on_request(
    compose_config: Callable[..., DictConfig],
    tiny_synthetic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = compose_config("train", tiny_data_overrides(tiny_synthetic))
    L.seed_everything(0)
    model = hydra.utils.instantiate(cfg.model)
    datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg="composition" in model.loss.active_terms)
    default, unblurred = WandbImagePanel(num_samples=1), WandbImagePanel(num_samples=2, log_unblurred=True)
    logger = WandbLogger(project="p3m-test", save_dir=str(tmp_path), offline=True)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=2,
        num_sanity_val_steps=1,  # the sanity check must not log
        logger=logger,
        callbacks=[default, unblurred],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    run_dir = Path(logger.experiment.dir).parent  # <run>/files: where the run itself says it writes
    logger.experiment.finish()

    assert list(default.panel) == ["P3M-500-P"]  # anonymized faces only
    assert list(unblurred.panel) == ["P3M-500-P", "P3M-500-NP"]
    assert [len(rows) for rows in unblurred.panel.values()] == [2, 2]
    height, width = TINY_SYNTHETIC["size"]
    image, *maps = default.panel["P3M-500-P"][0]  # image, alpha, trimap, local, fusion
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert len(maps) == 4 and all(m.shape == (height, width) and m.dtype == np.uint8 for m in maps)
    assert set(np.unique(maps[1])) <= {0, 128, 255}  # the predicted trimap

    media = [p.name for p in (run_dir / "files" / "media" / "images" / "panel").glob("*.png")]
    # W&B stores each distinct picture once (tiles identical across rows or panels share a file)
    assert any(name.startswith("P3M-500-P_") for name in media)
    assert any(name.startswith("P3M-500-NP_") for name in media)  # from the opt-in panel only
