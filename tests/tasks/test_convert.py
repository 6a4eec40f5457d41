"""src/convert.py: the authors' file becomes one of our checkpoints, loadable everywhere a checkpoint is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from p3m.models import load_model
from p3m.models.checkpoints import load_checkpoint_state
from p3m.tasks.convert import convert_official_checkpoint, run_conversion
from p3m.utils.errors import UserError


@pytest.fixture(scope="module")
def official_file(
    official_weights: Callable[..., dict[str, torch.Tensor]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The r34 stand-in weights (fill_official, seed 0) as the authors ship them: DataParallel keys."""
    state = official_weights("r34")
    path = tmp_path_factory.mktemp("official") / "p3mnet_pretrained_on_p3m10k.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


def test_conversion_keeps_every_weight_and_reports_the_classifier(
    official_file: Path, compose_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    target = tmp_path / "converted" / "p3mnet_r34.ckpt"
    summary = run_conversion(compose_config("convert", [f"input={official_file}", f"output={target}"]))
    assert summary["arch"] == "r34" and summary["backbone"] == "resnet34"
    assert summary["ignored"] == ["resnet.fc.bias", "resnet.fc.weight"]

    saved = torch.load(target, weights_only=True)
    assert all(k.startswith("net.") for k in saved["state_dict"])
    assert saved["converted_from"]["official_arch"] == "r34"
    state = load_checkpoint_state(target)
    assert (state.source, state.backbone) == ("lightning", "resnet34")
    assert len(state.state_dict) == summary["converted"]

    ours, theirs = load_model(target).state_dict(), load_model(official_file).state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_files_that_are_not_official_checkpoints_are_refused(official_file: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    torch.save({"state_dict": {"classifier.weight": torch.zeros(2, 2)}}, junk)
    with pytest.raises(ValueError, match="expected keys identifying one of"):
        convert_official_checkpoint(junk, tmp_path / "out.ckpt")
    converted = tmp_path / "ours.ckpt"
    convert_official_checkpoint(official_file, converted, arch="r34")
    with pytest.raises(ValueError, match="already one of our checkpoints"):
        convert_official_checkpoint(converted, tmp_path / "again.ckpt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_official_checkpoint(tmp_path / "missing.pth", tmp_path / "out.ckpt")
    assert not (tmp_path / "out.ckpt").exists()


def test_the_authors_file_and_existing_outputs_are_never_replaced(
    official_file: Path, compose_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    def convert(output: Path, *extra: str) -> dict:
        return run_conversion(
            compose_config("convert", [f"input={official_file}", f"output={output}", *extra])
        )

    original = official_file.read_bytes()
    for extra in ([], ["overwrite=true"]):
        with pytest.raises(UserError, match="would replace 1 of the input files"):
            convert(official_file, *extra)
    assert official_file.read_bytes() == original

    earlier = tmp_path / "p3mnet_r34.ckpt"
    earlier.write_bytes(b"an earlier checkpoint")
    with pytest.raises(UserError, match=r"already exist .*set overwrite=true"):
        convert(earlier)
    assert earlier.read_bytes() == b"an earlier checkpoint"
    with pytest.raises(UserError, match="is a folder"):
        convert(tmp_path)

    assert convert(earlier, "overwrite=true")["arch"] == "r34"
    assert load_checkpoint_state(earlier).backbone == "resnet34"
    assert [p.name for p in tmp_path.iterdir()] == ["p3mnet_r34.ckpt"], "no temporary file left"
