"""Every registered backbone honours the contract in backbones/base.py (timm-style, over the registry)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from p3m.models import P3MNet
from p3m.models.components.backbones import Backbone, create_backbone, list_backbones
from p3m.models.components.backbones.base import DEEPEST_STRIDE, SKIP_STRIDES
from p3m.models.official_format import convert_official_state_dict, detect_official_arch, official_formats

# Smallest square input (a multiple of 32) each backbone runs at; 64 unless listed.
INPUT_SIZE: dict[str, int] = {}


def _input(name: str, batch: int = 1) -> torch.Tensor:
    size = INPUT_SIZE.get(name, 64)
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module", params=list_backbones())
def net(request: pytest.FixtureRequest) -> P3MNet:
    """A P3M-Net around each registered backbone, in eval mode (tests that train restore it)."""
    torch.manual_seed(0)
    return P3MNet(create_backbone(request.param, pretrained=False)).eval()


@pytest.fixture
def backbone(net: P3MNet, request: pytest.FixtureRequest) -> tuple[str, Backbone]:
    return request.node.callspec.params["net"], net.backbone


def test_resnet34_is_registered() -> None:
    assert "resnet34" in list_backbones()


def test_features_match_the_declared_channels_and_strides(backbone: tuple[str, Backbone]) -> None:
    name, model = backbone
    x = _input(name)
    size = x.shape[-1]
    with torch.no_grad():
        features = model(x)
    assert len(features.skips) == len(SKIP_STRIDES) == len(model.skip_channels)
    for skip, channels, stride in zip(features.skips, model.skip_channels, SKIP_STRIDES, strict=True):
        assert skip.shape == (1, channels, size // stride, size // stride), f"skip at stride {stride}"
    assert features.deepest.shape == (
        1,
        model.deepest_channels,
        size // DEEPEST_STRIDE,
        size // DEEPEST_STRIDE,
    )
    assert len(features.indices) == 5
    for i, idx in enumerate(features.indices):
        # indices[i] un-pools a stride 2**(i+1) map back to stride 2**i.
        assert idx.shape[-2:] == (size // 2 ** (i + 1),) * 2, f"indices[{i}]"
        assert not idx.is_floating_point()
    for tensor in (*features.skips, features.deepest):
        assert torch.isfinite(tensor).all()
    assert [f["reduction"] for f in model.feature_info] == [*SKIP_STRIDES, DEEPEST_STRIDE]


def test_split_stages_equal_one_pass(backbone: tuple[str, Backbone]) -> None:
    name, model = backbone
    x = _input(name)
    with torch.no_grad():
        whole = model(x)
        for k in range(model.num_stages + 1):
            state = model.forward_stages(model.forward_stages(x, end=k), start=k)
            torch.testing.assert_close(state.x, whole.deepest, rtol=0, atol=0, msg=f"split at {k}")
            assert len(state.skips) == 5 and len(state.indices) == 5, f"split at {k}"
            for ours, ref in zip((*state.skips, *state.indices), (*whole.skips, *whole.indices), strict=True):
                assert torch.equal(ours, ref), f"split at {k}"


@pytest.mark.filterwarnings("ignore:TF32 acceleration")
def test_every_parameter_gets_a_gradient_through_p3mnet(net: P3MNet, request: pytest.FixtureRequest) -> None:
    name = request.node.callspec.params["net"]
    net.zero_grad(set_to_none=True)
    net.train()
    try:
        # oneDNN's weight-gradient kernels take seconds on these tiny maps on 2 cores; the native path
        # does not.
        with torch.backends.mkldnn.flags(enabled=False, allow_tf32=False):
            out = net(_input(name))
            # The fusion alpha carries no gradient to the global branch (arg-max), the other outputs do.
            sum(t.float().mean() for t in out).backward()
    finally:
        net.eval()
    # Frozen parameters (official ones no forward uses, kept for checkpoint parity) are exempt.
    trained = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    starved = [n for n, p in trained if p.grad is None or not torch.isfinite(p.grad).all()]
    net.zero_grad(set_to_none=True)
    assert not starved, f"{len(starved)} parameters got no finite gradient, e.g. {starved[:5]}"


@pytest.mark.parametrize("arch", sorted(official_formats()))
def test_official_checkpoint_keys_convert_completely(arch: str, reference_dir: Path) -> None:
    """For every backbone that reads the authors' checkpoints: every official key maps onto ours."""
    manifest = json.loads((reference_dir / "models" / f"{arch}_manifest.json").read_text())
    # Only names and shapes matter here; zeros also satisfy the r34 alias check.
    official = {
        f"module.{k}": torch.zeros(shape, dtype=getattr(torch, dtype))
        for k, shape, dtype in manifest["state_dict"]
    }
    assert detect_official_arch(official) == arch
    # Raises on any key that maps nowhere and on missing keys or wrong shapes against P3MNet(backbone);
    # test_official_r34.py also loads the result strictly into a real model.
    converted = convert_official_state_dict(official)
    assert all(k.startswith(("backbone.", "global_decoder.", "local_decoder.")) for k in converted)


# ----------------------------------------------------------------------- ResNet-34 ImageNet weights


@pytest.fixture(scope="module")
def torchvision_r34() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return torchvision.models.resnet34(weights=None).state_dict()


@pytest.mark.parametrize("wrap", ["bare", "authors"])
def test_resnet34_loads_imagenet_weights(
    torchvision_r34: dict[str, torch.Tensor], tmp_path: Path, wrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = torchvision_r34
    if wrap == "authors":  # the authors' file may sit under 'state_dict' with a DataParallel prefix
        state = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    path = tmp_path / "r34mp_pretrained_imagenet.pth.tar"
    torch.save(state, path)
    with caplog.at_level("WARNING"):
        model = create_backbone("resnet34", pretrained=path)
    assert not caplog.records, "a full torchvision ResNet-34 leaves no key missing or unexpected"
    ours = model.state_dict()
    assert ours.keys() == {k for k in torchvision_r34 if not k.startswith("fc.")}
    for key, value in ours.items():
        assert torch.equal(value, torchvision_r34[key]), key


def test_resnet34_reports_missing_imagenet_keys(
    torchvision_r34: dict[str, torch.Tensor], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in torchvision_r34.items() if not k.startswith("layer4.")}, path)
    with caplog.at_level("WARNING"):
        create_backbone("resnet34", pretrained=path)
    assert "missing" in caplog.text and "layer4.0.conv1.weight" in caplog.text


def test_resnet34_refuses_files_that_are_not_resnet34(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"conv1\.weight"):
        create_backbone("resnet34", pretrained=path)
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(ValueError, match=r"conv1\.weight has shape"):
        create_backbone("resnet34", pretrained=path)
    with pytest.raises(FileNotFoundError, match=r"absent\.pth"):
        create_backbone("resnet34", pretrained=tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="needs a file"):
        create_backbone("resnet34", pretrained=True)
