"""data=folder end to end: one command fine-tunes the authors' weights on a folder of portraits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from p3m.tasks.train import train
from tests.folder_data import TEST_DETECTOR, make_folder, sample_folder

# Tiny sizes: one epoch of one batch at 64 px, validation on the held-out part, no sanity pass.
TINY = [
    "trainer=cpu",
    "logger=csv",
    "data.train_size=64",
    "data.num_workers=0",
    "data.prepare_workers=1",
    "trainer.max_epochs=1",
    "trainer.num_sanity_val_steps=0",
    "model.heavy_every_n_epochs=0",
]


@pytest.fixture(scope="module")
def authors_weights(tmp_path_factory: pytest.TempPathFactory, official_weights: Callable[..., dict]) -> Path:
    """Stand-in weights in the layout of the authors' released file."""
    path = tmp_path_factory.mktemp("weights") / "p3mnet_pretrained_on_p3m10k.pth"
    torch.save({"state_dict": official_weights("r34", seed=5)}, path)
    return path


@pytest.mark.slow
def test_one_command_fine_tunes_on_the_sample_portraits(
    compose_config: Callable[..., DictConfig],
    authors_weights: Path,
    samples_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sample_folder(samples_dir, tmp_path / "photos", tmp_path / "mattes")
    command = [
        "data=folder",
        f"data.images={tmp_path / 'photos'}",
        f"data.mattes={tmp_path / 'mattes'}",
        f"model.init_from={authors_weights}",
    ]
    overrides = [
        "backbone.pretrained=/nonexistent/r34mp_pretrained_imagenet.pth.tar",  # as the paper's experiment
        f"data.anonymizer.detector={TEST_DETECTOR}",  # privacy=ppt's anonymiser, without CenterFace
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.crop_sizes=[256]",
        *TINY,
    ]
    cfg = compose_config("train", [*command, *overrides])
    with caplog.at_level(logging.INFO):
        metrics = train(cfg)
    assert (
        "(backbone.pretrained=/nonexistent/r34mp_pretrained_imagenet.pth.tar) are not loaded" in caplog.text
    )
    assert (
        "data.batch_size=8 is larger than the 7 training image(s): training with batches of 7" in caplog.text
    )
    assert "8 pairs, 7 to train on, 1 held out" in caplog.text and "8 soft matte(s)" in caplog.text
    assert metrics["val/p/sad"] >= 0 and metrics["val/p/sad_t"] >= 0  # trimaps made from soft mattes
    assert list((Path(cfg.paths.output_dir) / "checkpoints").glob("*.ckpt"))
    derived = next((tmp_path / "cache").iterdir())
    assert len(list((derived / "train" / "blurred_image").iterdir())) == 7  # PPT: anonymised copies
    assert not (derived / "train" / "original_image").exists()


@pytest.mark.slow
@pytest.mark.parametrize("band_labels", ["ignore", "pseudo"])
def test_binary_masks_fine_tune_in_binary_label_mode(
    band_labels: str,
    compose_config: Callable[..., DictConfig],
    authors_weights: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    images, masks = make_folder(tmp_path, count=6, size=(192, 144), binary=True)
    cfg = compose_config(
        "train",
        [
            "data=folder",
            f"data.images={images}",
            f"data.mattes={masks}",
            f"model.init_from={authors_weights}",
            f"data.band_labels={band_labels}",
            "privacy=none",
            f"data.cache_dir={tmp_path / 'cache'}",
            "data.crop_sizes=[96]",
            "data.batch_size=2",
            "callbacks=none",  # no checkpoints to write (the first test checks them)
            "+trainer.enable_checkpointing=false",
            *TINY,
        ],
    )
    with caplog.at_level(logging.INFO):
        metrics = train(cfg)
    assert "6 binary mask(s), 0 soft matte(s) (data.labels=auto)" in caplog.text
    assert "binary masks train in binary-label mode" in caplog.text
    assert "privacy=none: training on the images" in caplog.text
    assert metrics["train/loss/total"] > 0 and metrics["val/p/sad"] >= 0 and "val/p/sad_t" not in metrics
    pseudo = list((tmp_path / "cache").glob("*/pseudo/*/*.png"))
    assert len(pseudo) == (5 if band_labels == "pseudo" else 0)
