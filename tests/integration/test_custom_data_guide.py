"""docs/custom-data.md runs as written: its commands in order, on a folder made from the sample portraits.

Each command is composed from the guide's own words, run in a folder holding ``photos/`` and
``mattes/`` (the 8 sample portraits), ``masks/`` (their mattes thresholded), ``new_photos/`` and stand-in
weights where the guide names the authors' file; only sizes and the face detector are overridden
(tiny training and evaluation on the CPU; the anonymiser's CenterFace is an optional install).
"""

from __future__ import annotations

import logging
import shlex
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from p3m.tasks.eval import run_evaluation
from p3m.tasks.predict import run_prediction
from p3m.tasks.train import train
from tests.conftest import REPO_ROOT
from tests.folder_data import TEST_DETECTOR, sample_folder
from tests.guide_commands import guide_commands

SPEED = {
    "train": [
        "trainer=cpu",
        "logger=csv",
        "trainer.max_epochs=1",
        "trainer.num_sanity_val_steps=0",
        "model.heavy_every_n_epochs=0",
        "data.train_size=64",
        "data.crop_sizes=[256]",
        "data.num_workers=0",
        "data.prepare_workers=1",
        f"data.anonymizer.detector={TEST_DETECTOR}",
        "data.pseudo_labeler.strategy=resize",
        "+data.pseudo_labeler.max_short_side=256",
    ],
    "eval": ["trainer=cpu", "test_strategy=resize", "resize_mode=fast", "metrics=[sad,mse,sad_t]"],
    "predict": ["test_strategy=resize", "resize_mode=fast", "max_short_side=256"],
}
TASKS: dict[str, Callable[[DictConfig], object]] = {
    "train": train,
    "eval": run_evaluation,
    "predict": run_prediction,
}


def _compose(script: str, overrides: list[str], root: Path, run: int) -> DictConfig:
    """The script's config as Hydra composes it, run directories as a real run has them."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task_name=")), script)
        run_dir = root / "logs" / task / "runs" / f"run{run:02d}"
        cfg = compose(
            script,
            overrides=[
                *overrides,
                f"paths.log_dir={root / 'logs'}",
                f"paths.data_dir={root / 'data'}",
                f"paths.output_dir={run_dir}",
                f"hydra.run.dir={run_dir}",
            ],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture(autouse=True)
def _hydra_config_removed() -> Iterator[None]:
    """Each command's config is installed as the current HydraConfig (as a running app has it):
    removed after the test, as conftest's ``compose_config`` does, so no later test inherits it."""
    yield
    HydraConfig.instance().cfg = None


@pytest.mark.slow
def test_the_guide_runs_as_written(
    official_weights: Callable[..., dict],
    samples_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sample_folder(samples_dir, tmp_path / "photos", tmp_path / "mattes")
    sample_folder(samples_dir, tmp_path / "unused", tmp_path / "masks", binary=True)
    (tmp_path / "new_photos").mkdir()
    shutil.copy(next((tmp_path / "photos").iterdir()), tmp_path / "new_photos")
    (tmp_path / "pretrained").mkdir()
    torch.save(
        {"state_dict": official_weights("r34", seed=5)},
        tmp_path / "pretrained" / "p3mnet_pretrained_on_p3m10k.pth",
    )
    monkeypatch.chdir(tmp_path)
    results = []
    with caplog.at_level(logging.INFO):
        for run, command in enumerate(guide_commands()):
            words = shlex.split(command)
            script = words[1].removeprefix("src/").removesuffix(".py")
            cfg = _compose(script, [*words[2:], *SPEED[script]], tmp_path, run)
            results.append(TASKS[script](cfg))
    train_metrics, eval_doc, _, mask_metrics = results
    assert train_metrics["val/p/sad"] >= 0 and list(
        (tmp_path / "logs" / "mine" / "runs").glob("*/checkpoints/*.ckpt")
    )
    assert eval_doc["held-out"]["mean"]["sad"] >= 0 and "sad_t" in eval_doc["held-out"]["mean"]
    assert list((tmp_path / "new_mattes" / "alpha").glob("*.png"))
    assert (
        "8 binary mask(s), 0 soft matte(s)" in caplog.text
        and "labelling the band of 7 binary mask(s)" in caplog.text
    )
    assert mask_metrics["val/p/sad"] >= 0
