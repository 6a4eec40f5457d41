"""P3M-Net: output contract, fusion rule, size, and decoders that express every official variant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from p3m.models import P3MNet, P3MOutput
from p3m.models.components.backbones import SwinBackbone, ViTAEBackbone
from p3m.models.components.decoders import GlobalDecoder, LocalDecoder
from p3m.models.components.p3mnet import fuse_global_local
from p3m.models.official_format import official_decoder_key

# The IJCV variants' own declarations (decoder plan, skip and deepest widths), checked below against
# the official decoders' parameter counts (total - encoder) and key shapes.
IJCV_VARIANTS = {
    "swin": (SwinBackbone, 45_128_206 - 26_475_354),
    "vitae": (ViTAEBackbone, 26_950_052 - 18_653_312),
}
SWIN_SPEC = SwinBackbone.decoder_spec


@pytest.fixture(scope="module")
def model() -> P3MNet:
    torch.manual_seed(0)
    return P3MNet("resnet34").eval()


def test_output_is_the_official_six_tuple_with_names(model: P3MNet) -> None:
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, P3MOutput)
    assert P3MOutput._fields == ("global_logits", "local_alpha", "fusion_alpha", "side2", "side1", "side0")
    assert out[0] is out.global_logits and out[5] is out.side0
    for name in ("global_logits", "side2", "side1", "side0"):
        assert getattr(out, name).shape == (2, 3, 64, 64), name
    for name in ("local_alpha", "fusion_alpha"):
        assert getattr(out, name).shape == (2, 1, 64, 64), name
    assert out.local_alpha.min() >= 0 and out.local_alpha.max() <= 1
    torch.testing.assert_close(out.fusion_alpha, fuse_global_local(out.global_logits, out.local_alpha))


def test_fusion_rule_on_a_hand_made_case() -> None:
    # Per-pixel arg-max classes: [[bg, transition], [fg, transition]].
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 0, 0, 0] = 5.0
    logits[0, 1, 0, 1] = 2.0
    logits[0, 2, 1, 0] = 0.5
    logits[0, 1, 1, 1] = 9.0
    local = torch.tensor([[[[0.3, 0.4], [0.2, 0.7]]]], requires_grad=True)
    fused = fuse_global_local(logits, local)
    torch.testing.assert_close(fused, torch.tensor([[[[0.0, 0.4], [1.0, 0.7]]]]))
    fused.sum().backward()
    # The gradient reaches the local alpha on transition pixels only, as in the official rule.
    torch.testing.assert_close(local.grad, torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]]))


def test_parameter_count_matches_the_official_model_without_its_unused_classifier(model: P3MNet) -> None:
    # Official: 39,478,060 parameters, of which 513,000 are the never-used ImageNet classifier.
    assert sum(p.numel() for p in model.parameters()) == 38_965_060
    assert sum(p.numel() for p in model.backbone.parameters()) == 21_284_672


def test_non_square_input(model: P3MNet) -> None:
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 96))
    assert out.global_logits.shape == (1, 3, 64, 96)
    assert out.fusion_alpha.shape == (1, 1, 64, 96)
    assert all(torch.isfinite(t).all() for t in out)


def test_eval_mode_is_deterministic(model: P3MNet) -> None:
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        first, second = model(x), model(x)
    for name, a, b in zip(P3MOutput._fields, first, second, strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("shape", [(1, 3, 50, 64), (1, 1, 64, 64), (3, 64, 64)])
def test_bad_input_shape_is_refused_with_the_fix(model: P3MNet, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(*shape))


def test_segment_and_matte_are_the_forward_outputs_without_the_rest(model: P3MNet) -> None:
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        out = model(x)
        assert torch.equal(model.segment(x), out.global_logits)
        assert torch.equal(model.matte(x), out.local_alpha)
    with pytest.raises(ValueError, match="multiples of 32"):
        model.segment(torch.randn(1, 3, 50, 64))


def test_decoder_spec_that_does_not_fit_the_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="deepest feature has 512"):
        GlobalDecoder(SWIN_SPEC, deepest_channels=512)
    with pytest.raises(ValueError, match="TFI needs equal widths"):
        LocalDecoder(SWIN_SPEC, skip_channels=(48, 64, 96, 192, 384), deepest_channels=768)


def _decoders(arch: str) -> torch.nn.ModuleDict:
    backbone = IJCV_VARIANTS[arch][0]
    spec, skips, deepest = backbone.decoder_spec, backbone.skip_channels, backbone.deepest_channels
    with torch.device("meta"):
        return torch.nn.ModuleDict(
            {
                "global_decoder": GlobalDecoder(spec, deepest),
                "local_decoder": LocalDecoder(spec, skips, deepest),
            }
        )


@pytest.mark.parametrize("arch", sorted(IJCV_VARIANTS))
def test_spec_builder_reproduces_the_ijcv_decoders_size(arch: str) -> None:
    assert sum(p.numel() for p in _decoders(arch).parameters()) == IJCV_VARIANTS[arch][1]


@pytest.mark.parametrize("arch", sorted(IJCV_VARIANTS))
def test_official_ijcv_decoder_keys_map_onto_ours_with_equal_shapes(arch: str, reference_dir: Path) -> None:
    manifest = json.loads((reference_dir / "models" / f"{arch}_manifest.json").read_text())
    official = {
        k.removeprefix("decoder."): s for k, s, _ in manifest["state_dict"] if k.startswith("decoder.")
    }
    ours = {k: list(v.shape) for k, v in _decoders(arch).state_dict().items()}
    mapped = {official_decoder_key(k): s for k, s in official.items()}
    assert None not in mapped, [k for k in official if official_decoder_key(k) is None][:5]
    assert mapped == ours
