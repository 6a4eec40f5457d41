"""Parity with the official ResNet-34 P3M-Net, and reading every checkpoint format we accept."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor

from p3m.models import P3MNet, P3MOutput, load_model
from p3m.models.checkpoints import load_checkpoint_state
from p3m.models.official_format import convert_official_state_dict, detect_official_arch
from tests.fixtures import load_npz

# Measured with torch 2.14 on CPU (fp32): local 1.0e-6, fusion 0, global 2.7e-5, side2 2.5e-5,
# side1 3.1e-5, side0 2.9e-5 (the logits reach |50|, so theirs is a relative error of ~1e-6).
ALPHA_ATOL = 1e-4
LOGIT_ATOL = 2e-4
FIXTURE_NAMES = ("global", "local", "fusion", "side2", "side1", "side0")  # official order


@pytest.fixture(scope="module")
def official_state(official_weights: Callable[..., dict[str, Tensor]]) -> dict[str, Tensor]:
    """The official-format r34 weights the fixtures were computed with (fill_official, seed 0)."""
    return official_weights("r34")


@pytest.fixture(scope="module")
def ours() -> dict[str, Tensor]:
    torch.manual_seed(3)
    return P3MNet("resnet34").state_dict()


@pytest.mark.slow
def test_outputs_match_the_official_model(
    official_state: dict[str, Tensor],
    reference_dir: Path,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    # As the authors release them: under 'state_dict', here also with a DataParallel prefix.
    path = tmp_path / "p3mnet_r34_official.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in official_state.items()}}, path)
    model = load_model(path)
    assert not model.training
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in model.parameters())

    fixture = load_npz(reference_dir / "models" / "r34_parity_224.npz")
    step = fixture["stride"]
    with torch.no_grad():
        out = model(fixture["input"])
    assert isinstance(out, P3MOutput)
    for index, name in enumerate(FIXTURE_NAMES):
        ours = out[index][..., ::step, ::step]
        error = (ours - fixture[name]).abs().max().item()
        record_property(f"max_abs_err_{name}", error)
        atol = ALPHA_ATOL if name in ("local", "fusion") else LOGIT_ATOL
        assert error <= atol, f"{name}: max abs error {error:.2e} > {atol:.0e}"


def test_every_official_key_is_used_and_the_classifier_reported(
    official_state: dict[str, Tensor], ours: dict[str, Tensor], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="p3m.models.official_format"):
        converted = convert_official_state_dict(official_state)
    assert converted.keys() == ours.keys()
    assert "resnet.fc.weight" in caplog.text and "ignored 2 unused keys" in caplog.text
    # Spot checks of the renaming: depth-numbered official modules -> our stage order.
    torch.testing.assert_close(converted["backbone.conv1.weight"], official_state["resnet.conv1.weight"])
    torch.testing.assert_close(
        converted["global_decoder.stages.0.convs.0.weight"], official_state["decoder4_g.0.weight"]
    )
    torch.testing.assert_close(
        converted["local_decoder.stages.1.tfi.reduce.weight"], official_state["tfi_3.transform.weight"]
    )
    torch.testing.assert_close(
        converted["global_decoder.stages.4.dbfi.side.weight"], official_state["dbfi_0.conv2.weight"]
    )
    torch.testing.assert_close(converted["local_decoder.head.bias"], official_state["decoder_final_l.bias"])


@pytest.mark.parametrize("keep", ["resnet.", "encoder"])
def test_either_copy_of_the_encoder_is_enough(official_state: dict[str, Tensor], keep: str) -> None:
    drop = "encoder" if keep == "resnet." else "resnet."
    state = {k: v for k, v in official_state.items() if not k.startswith(drop)}
    assert detect_official_arch(state) == "r34"
    converted = convert_official_state_dict(state, arch="r34")
    torch.testing.assert_close(
        converted["backbone.layer4.2.bn2.running_var"], official_state["encoder4.2.bn2.running_var"]
    )


def test_detect_official_arch() -> None:
    assert detect_official_arch(["module.resnet.conv1.weight", "decoder4_g.0.weight"]) == "r34"
    assert detect_official_arch(["encoder0.0.weight"]) == "r34"
    assert detect_official_arch(["backbone.conv1.weight"]) is None


def test_bad_official_state_dicts_are_refused_clearly(official_state: dict[str, Tensor]) -> None:
    aliased = dict(official_state)
    aliased["encoder0.0.weight"] = aliased["encoder0.0.weight"] + 1
    with pytest.raises(ValueError, match=r"alias .* differ"):
        convert_official_state_dict(aliased)
    with pytest.raises(ValueError, match=r"do not belong to the official r34 format: \['extra\.weight'\]"):
        convert_official_state_dict({**official_state, "extra.weight": torch.zeros(1)})
    missing = {k: v for k, v in official_state.items() if k != "decoder_final_l.bias"}
    with pytest.raises(
        ValueError, match=r"official r34 format: 1 missing keys \['local_decoder\.head\.bias'\]"
    ):
        convert_official_state_dict(missing)
    wrong = {**official_state, "decoder_final_l.bias": torch.zeros(2)}
    with pytest.raises(ValueError, match="wrong shape"):
        convert_official_state_dict(wrong)
    with pytest.raises(ValueError, match=r"resnet\.conv1\.weight or encoder0\.0\.weight"):
        convert_official_state_dict({"foo.weight": torch.zeros(1)})


@pytest.mark.parametrize("layout", ["lightning", "p3mnet", "dataparallel", "official_bare"])
def test_load_checkpoint_state_reads_every_layout(
    layout: str, ours: dict[str, Tensor], official_state: dict[str, Tensor], tmp_path: Path
) -> None:
    expected = ours
    if layout == "lightning":
        # Lightning: the network is `self.net`; other module state (loss buffers) is not the model's.
        state = {"state_dict": {f"net.{k}": v for k, v in ours.items()} | {"criterion.kernel": torch.ones(3)}}
        state["epoch"] = 3
    elif layout == "p3mnet":
        state = ours
    elif layout == "dataparallel":
        state = {f"module.{k}": v for k, v in ours.items()}
    else:
        state, expected = official_state, convert_official_state_dict(official_state)
    path = tmp_path / "weights.ckpt"
    torch.save(state, path)
    loaded = load_checkpoint_state(path)
    assert loaded.backbone == "resnet34"
    assert loaded.source == {"official_bare": "official-r34", "lightning": "lightning"}.get(layout, "p3mnet")
    assert loaded.state_dict.keys() == expected.keys()
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in expected.items())


def test_load_model_from_a_lightning_checkpoint(ours: dict[str, Tensor], tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in ours.items()}}, path)
    model = load_model(path, backbone="resnet34")
    assert isinstance(model, P3MNet) and not model.training
    assert all(torch.equal(v, ours[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="not swin"):
        load_model(path, backbone="swin")


class _NotATensor:
    """Something torch.load(weights_only=True) must refuse to unpickle."""


def test_unreadable_and_unknown_files_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent"):
        load_checkpoint_state(tmp_path / "absent.ckpt")
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"head.weight": torch.zeros(2)}}, path)
    with pytest.raises(ValueError, match=r"matches no known checkpoint format: expected keys `net\.backbone"):
        load_checkpoint_state(path)
    torch.save({"state_dict": {"net.backbone.conv1.weight": torch.zeros(2)}}, path)
    with pytest.raises(ValueError, match="match no registered backbone"):
        load_checkpoint_state(path)
    torch.save({"state_dict": {}, "config": _NotATensor()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_checkpoint_state(path)
