"""Every privacy mode trains on the synthetic data (composed with Hydra), sad_privacy is logged and can
pick checkpoints, and the re-obfuscated P3M-500-P evaluation splits obfuscate on the fly."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from p3m.data.datamodule import P3M10kDataModule
from p3m.data.eval_splits import EvalSplit
from p3m.data.io import read_image, read_mask
from p3m.models.components.p3mnet import P3MNet
from p3m.privacy.obfuscate import FaceObfuscator, obfuscation_region
from p3m.tasks.train import train
from tests.conftest import tiny_data_overrides

MODES = {
    "ppt": ["privacy=ppt"],
    "none": ["privacy=none"],
    "obfuscate": ["privacy=obfuscate", "privacy.method=mosaic"],
    "icp": ["privacy=cp", "privacy.level=image", "privacy.prob=1.0"],
    "fcp": ["privacy=cp", "privacy.level=feature", "privacy.prob=1.0", "privacy.stage=2"],
}


@pytest.mark.slow  # a training run
@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_trains_one_step(
    mode: str, compose_config: Callable[..., DictConfig], tiny_synthetic: Path
) -> None:
    cfg = compose_config("train", [*tiny_data_overrides(tiny_synthetic), *MODES[mode], "debug=fdr"])
    target = {"ppt": "PPT", "none": "NoPrivacy", "obfuscate": "Obfuscate", "cp": "CopyPaste"}
    assert cfg.privacy._target_ == f"p3m.privacy.modes.{target[MODES[mode][0].split('=')[1]]}"
    metrics = train(cfg)
    assert math.isfinite(float(metrics["train/loss/total"]))
    assert float(metrics["val/p/sad_privacy"]) >= 0  # P3M-500-P has face masks ...
    assert "val/np/sad_privacy" not in metrics  # ... P3M-500-NP has none


@pytest.mark.slow  # a training run
def test_fcp_batches_reach_the_staged_forward(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = P3MNet.forward_feature_paste

    def spy(net: P3MNet, image: torch.Tensor, source: torch.Tensor, mask: torch.Tensor, stage: int) -> object:
        calls.append(stage)
        return real(net, image, source, mask, stage)

    monkeypatch.setattr(P3MNet, "forward_feature_paste", spy)
    train(compose_config("train", [*tiny_data_overrides(tiny_synthetic), *MODES["fcp"], "debug=fdr"]))
    assert calls == [2]  # the stage comes from the config, not from the batches


@pytest.mark.slow  # a training run
def test_checkpoints_on_sad_privacy_with_the_obfuscated_splits(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tmp_path: Path
) -> None:
    overrides = [
        *tiny_data_overrides(tiny_synthetic),
        "data/extra_splits=obfuscated",
        "debug=limit",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1",
        "trainer.num_sanity_val_steps=0",
        "logger=csv",
        "callbacks.model_checkpoint.monitor=val/p/sad_privacy",
        "callbacks.last_checkpoint=null",  # only the monitored checkpoint
    ]
    cfg = compose_config("train", overrides)
    metrics = train(cfg)
    for prefix in ("val/p", "val/p_zero", "val/p_mosaic"):
        assert float(metrics[f"{prefix}/sad_privacy"]) >= 0 and f"{prefix}/sad" in metrics
    assert "val/np/sad" in metrics and "val/np/sad_privacy" not in metrics
    checkpoints = list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) == 1
    state = torch.load(checkpoints[0], map_location="cpu", weights_only=True)
    callback = next(v for k, v in state["callbacks"].items() if "ModelCheckpoint" in k)
    assert callback["monitor"] == "val/p/sad_privacy"
    assert float(callback["best_model_score"]) == pytest.approx(float(metrics["val/p/sad_privacy"]))


def test_obfuscated_evaluation_splits(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path
) -> None:
    data = [o for o in tiny_data_overrides(tiny_synthetic) if not o.startswith("trainer")]
    cfg = compose_config("eval", [*data, "data/extra_splits=obfuscated"])
    dm: P3M10kDataModule = instantiate(cfg.data, require_fg_bg=False)
    assert [s.name for s in dm.eval_splits] == [
        "P3M-500-P",
        "P3M-500-NP",
        "P3M-500-P-zero",
        "P3M-500-P-mosaic",
    ]
    assert [s.prefix for s in dm.eval_splits] == ["p", "np", "p_zero", "p_mosaic"]
    assert dm.eval_splits[2].obfuscate == FaceObfuscator(method="zero")
    dm.setup("test")
    loaders = dm.test_dataloader()
    for p_item, zero_item, mosaic_item in zip(loaders[0], loaders[2], loaders[3], strict=True):
        stem = p_item["stem"][0]
        assert zero_item["stem"][0] == mosaic_item["stem"][0] == stem
        blurred = p_item["image"][0].permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(  # P3M-500-P itself is read as it is on disk
            blurred, read_image(tiny_synthetic / f"validation/P3M-500-P/blurred_image/{stem}.jpg")
        )
        face = read_mask(tiny_synthetic / f"validation/P3M-500-P/facemask/{stem}.png")
        trimap = read_mask(tiny_synthetic / f"validation/P3M-500-P/trimap/{stem}.png")
        region = obfuscation_region(face, trimap=trimap)  # face minus the trimap's unknown region
        assert region.sum() > 20
        zero = zero_item["image"][0].permute(1, 2, 0).numpy()
        mosaic = mosaic_item["image"][0].permute(1, 2, 0).numpy()
        assert (zero[region] == 0).all()
        for obfuscated in (zero, mosaic):
            np.testing.assert_array_equal(obfuscated[~region], blurred[~region])
        colours = [len(np.unique(image[region].reshape(-1, 3), axis=0)) for image in (mosaic, blurred)]
        assert colours[0] < colours[1]  # a block holds one colour
        for key in ("alpha", "trimap", "facemask"):  # the ground truth is P3M-500-P's
            assert torch.equal(zero_item[key], p_item[key])


def test_eval_split_obfuscate_entry_errors() -> None:
    base = {"name": "X", "prefix": "x", "image_dir": "a", "mask_dir": "b"}
    with pytest.raises(ValueError, match="sets obfuscate but no facemask_dir"):
        EvalSplit.from_config({**base, "obfuscate": {"method": "zero"}}, 0, FaceObfuscator)
    with pytest.raises(ValueError, match=r"obfuscate: .*unexpected keyword argument 'block'"):
        EvalSplit.from_config({**base, "facemask_dir": "f", "obfuscate": {"block": 3}}, 0, FaceObfuscator)
    with pytest.raises(ValueError, match=r"eval_splits\[0\].obfuscate: unknown obfuscation method"):
        EvalSplit.from_config(
            {**base, "facemask_dir": "f", "obfuscate": {"method": "swirl"}}, 0, FaceObfuscator
        )
    with pytest.raises(ValueError, match=r"has no obfuscator \(data.obfuscator"):
        EvalSplit.from_config({**base, "facemask_dir": "f", "obfuscate": {"method": "zero"}})
    split = EvalSplit.from_config(
        {**base, "facemask_dir": "f", "obfuscate": {"method": "mosaic"}}, 0, FaceObfuscator
    )
    assert split.obfuscate == FaceObfuscator(method="mosaic")
    assert EvalSplit.from_config(base).obfuscate is None
