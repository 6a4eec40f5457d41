"""Swin-T and ViTAE-S encoders: sizes, counts, shifted windows, Performer, ImageNet-file loading.

Shapes, gradients and staging of every registered backbone are checked in test_backbones.py; parity
with the official model is in test_official_swin_vitae.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from p3m.models import P3MNet
from p3m.models.components.backbones import Backbone, create_backbone
from p3m.models.components.backbones.layers import (
    PerformerAttention,
    orthogonal_random_features,
    window_attention_mask,
)
from p3m.models.components.backbones.layers.shifted_windows import MASKED_LOGIT, padded_size
from p3m.models.components.backbones.swin import SwinBackbone, WindowAttention
from p3m.models.components.backbones.vitae import ViTAEBackbone


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def swin() -> SwinBackbone:
    torch.manual_seed(0)
    return create_backbone("swin").eval()


@pytest.fixture(scope="module")
def vitae() -> ViTAEBackbone:
    torch.manual_seed(0)
    return create_backbone("vitae").eval()


# --------------------------------------------------------------------------- sizes and counts


@pytest.mark.parametrize(
    ("name", "total", "encoder"),
    [("swin", 45_128_206, 26_475_354), ("vitae", 26_950_052, 18_653_312)],
)
def test_parameter_counts_equal_the_official_used_counts(name: str, total: int, encoder: int) -> None:
    with torch.device("meta"):  # counts need shapes only
        net = P3MNet(name)
    assert _count(net) == total
    assert _count(net.backbone) == encoder


def test_derived_buffers_are_not_saved_but_the_performer_features_are(
    swin: SwinBackbone, vitae: ViTAEBackbone
) -> None:
    assert not any("relative_position_index" in k or "attn_mask" in k for k in swin.state_dict())
    saved = [k for k in vitae.state_dict() if k.endswith("random_features")]
    assert saved == ["stages.0.cells.0.attn.random_features", "stages.0.cells.1.attn.random_features"]


def test_only_the_official_unused_performer_norms_are_frozen(
    vitae: ViTAEBackbone, swin: SwinBackbone
) -> None:
    # The official Performer builds a LayerNorm its forward never calls; its 2 x 128 weights are in
    # the official checkpoints and parameter count, so they are kept, frozen.
    frozen = {n: p.numel() for n, p in vitae.named_parameters() if not p.requires_grad}
    assert frozen == {
        f"stages.0.cells.{j}.attn.unused_norm.{w}": 64 for j in (0, 1) for w in ("weight", "bias")
    }
    assert all(p.requires_grad for p in swin.parameters())


@pytest.mark.parametrize("size", [(64, 96), (96, 64), (32, 64)])
@pytest.mark.parametrize("name", ["swin", "vitae"])
def test_non_square_and_tiny_inputs(name: str, size: tuple[int, int], request: pytest.FixtureRequest) -> None:
    model: Backbone = request.getfixturevalue(name)
    h, w = size
    with torch.no_grad():
        features = model(torch.randn(1, 3, h, w))
    for skip, channels, stride in zip(features.skips, model.skip_channels, (1, 2, 4, 8, 16), strict=True):
        assert skip.shape == (1, channels, h // stride, w // stride)
    assert features.deepest.shape == (1, model.deepest_channels, h // 32, w // 32)
    assert all(torch.isfinite(t).all() for t in (*features.skips, features.deepest))


@pytest.mark.parametrize("name", ["swin", "vitae"])
def test_stages_accept_an_edited_contiguous_feature_map(name: str, request: pytest.FixtureRequest) -> None:
    # P3M-FCP replaces state.x between stages with a tensor of its own (any memory layout).
    model: Backbone = request.getfixturevalue(name)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        whole = model(x).deepest
        for k in range(2, model.num_stages):
            state = model.forward_stages(x, end=k)
            state.x = state.x.clone(memory_format=torch.contiguous_format)
            torch.testing.assert_close(model.forward_stages(state, start=k).x, whole, rtol=1e-5, atol=1e-5)


def test_swin_runs_at_224_where_no_window_padding_is_needed(swin: SwinBackbone) -> None:
    # 224 px gives 56/28/14/7 token maps, all multiples of the window: the official code crashes here.
    assert window_attention_mask(56, 56, 7, 0) is None
    with torch.no_grad():
        features = swin(torch.randn(1, 3, 224, 224))
    assert features.deepest.shape == (1, 768, 7, 7)
    assert torch.isfinite(features.deepest).all()


@pytest.mark.slow
def test_vitae_runs_at_512(vitae: ViTAEBackbone) -> None:
    with torch.no_grad():
        features = vitae(torch.randn(1, 3, 512, 512))
    assert features.deepest.shape == (1, 512, 16, 16)
    assert features.skips[2].shape == (1, 64, 128, 128)
    assert torch.isfinite(features.deepest).all()


# --------------------------------------------------------------------------- shifted windows


def _brute_force_allowed(height: int, width: int, size: int, shift: int) -> torch.Tensor:
    """(num_windows, N, N) booleans, from the definition: two tokens of one window may attend to each
    other iff both are real (not padding) and the cyclic shift did not tear them apart, i.e. their
    displacement in the shifted map equals their displacement in the original map."""
    hp, wp = padded_size(height, size), padded_size(width, size)
    allowed = []
    for wy in range(hp // size):
        for wx in range(wp // size):
            cells = [(wy * size + i, wx * size + j) for i in range(size) for j in range(size)]
            # Original (unshifted) coordinates of each shifted position, without the modulo.
            src = [(y + shift, x + shift) for y, x in cells]
            real = [(sy % hp) < height and (sx % wp) < width for sy, sx in src]
            row = [
                [
                    real[a]
                    and real[b]
                    and (src[a][0] >= hp) == (src[b][0] >= hp)
                    and (src[a][1] >= wp) == (src[b][1] >= wp)
                    for b in range(len(cells))
                ]
                for a in range(len(cells))
            ]
            allowed.append(row)
    return torch.tensor(allowed)


@pytest.mark.parametrize(
    ("height", "width"), [(2, 2), (4, 8), (7, 7), (8, 16), (14, 21), (16, 16), (17, 12), (32, 32)]
)
@pytest.mark.parametrize("shift", [0, 3])
def test_window_mask_lets_real_tokens_see_exactly_their_unshifted_neighbours(
    height: int, width: int, shift: int
) -> None:
    allowed = _brute_force_allowed(height, width, 7, shift)
    mask = window_attention_mask(height, width, 7, shift)
    if mask is None:  # no shift, no padding: everything allowed
        assert allowed.all()
        return
    assert set(mask.unique().tolist()) <= {0.0, MASKED_LOGIT}
    # Rows of padding tokens are never used (their outputs are cropped); every real row must match.
    real_rows = allowed.any(dim=-1)
    assert torch.equal((mask == 0)[real_rows], allowed[real_rows])


def test_window_attention_equals_explicit_softmax_with_bias_and_mask() -> None:
    torch.manual_seed(0)
    attn = WindowAttention(dim=12, num_heads=3, window_size=7).eval()
    mask = window_attention_mask(16, 9, 7, 3)
    windows = torch.randn(2 * mask.shape[0], 49, 12)
    with torch.no_grad():
        ours = attn(windows, mask)
        q, k, v = attn.qkv(windows).view(-1, 49, 3, 3, 4).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-1, -2)) / 2.0 + attn.relative_position_bias()
        logits = logits.view(2, -1, 3, 49, 49) + mask[None, :, None]
        expected = (logits.view(-1, 3, 49, 49).softmax(-1) @ v).transpose(1, 2).reshape(-1, 49, 12)
        expected = attn.proj(expected)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- Performer


def test_random_features_are_orthogonal_seeded_and_leave_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    w = orthogonal_random_features(2, 32, 64, seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    assert torch.equal(w, orthogonal_random_features(2, 32, 64, seed=7))
    assert not torch.equal(w, orthogonal_random_features(2, 32, 64, seed=8))
    for head in w:  # orthogonal rows of norm sqrt(m)
        torch.testing.assert_close(head @ head.T, 32 * torch.eye(32), atol=1e-4, rtol=0)


def test_performer_matches_the_favor_formula() -> None:
    torch.manual_seed(0)
    attn = PerformerAttention(dim=16, num_heads=2, kernel_ratio=0.5, seed=3).eval()
    x = torch.randn(2, 10, 16)
    with torch.no_grad():
        k, q, v = attn.kqv(x).view(2, 10, 3, 2, 8).permute(2, 0, 3, 1, 4)
        w = attn.random_features  # (heads, m, d)

        def phi(t: torch.Tensor) -> torch.Tensor:
            return torch.exp(torch.einsum("bhtd,hmd->bhtm", t, w) - (t * t).sum(-1, keepdim=True) / 2) / 2.0

        kp, qp = phi(k), phi(q)
        num = torch.einsum("bhtm,bhdm->bhtd", qp, torch.einsum("bhtd,bhtm->bhdm", v, kp))
        den = torch.einsum("bhtm,bhm->bht", qp, kp.sum(2)).unsqueeze(-1)
        expected = attn.proj((num / (den + 1e-8)).transpose(1, 2).reshape(2, 10, 16))
        torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_vitae_inference_is_reproducible_across_builds() -> None:
    # The official model redraws its Performer projection at every build, so two runs of one
    # checkpoint differ (~1e-4); ours draws it from a fixed seed.
    torch.manual_seed(1)
    a = create_backbone("vitae").eval()
    torch.manual_seed(2)
    b = create_backbone("vitae").eval()
    weights = {k: v for k, v in a.state_dict().items() if not k.endswith("random_features")}
    b.load_state_dict(weights, strict=False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(a(x).deepest, b(x).deepest)


def test_official_states_get_the_seeded_features_with_a_log_line(
    vitae: ViTAEBackbone, caplog: pytest.LogCaptureFixture
) -> None:
    state = {k: v for k, v in vitae.state_dict().items() if not k.endswith("random_features")}
    with caplog.at_level(logging.INFO):
        completed = ViTAEBackbone.complete_official_state(state)
    assert "no Performer projection for stages.0.cells.1.attn" in caplog.text
    for key, value in vitae.state_dict().items():
        assert torch.equal(completed[key], value), key
    # ViTAE-S stage 1: one head of 64 channels, 0.5 * 64 = 32 random features.
    assert completed["stages.0.cells.0.attn.random_features"].shape == (1, 32, 64)


# --------------------------------------------------------------------------- ImageNet files


@pytest.fixture(scope="module")
def official_encoder(
    official_weights: Callable[..., dict[str, torch.Tensor]],
) -> Callable[[str], dict[str, torch.Tensor]]:
    """``official_encoder(arch)``: the encoder part of the filled official model, as the authors'
    ImageNet files hold it (keys without ``encoder.``); a fresh dict each call, filled once."""
    cache: dict[str, dict[str, torch.Tensor]] = {}

    def get(arch: str) -> dict[str, torch.Tensor]:
        if arch not in cache:
            filled = official_weights(arch, prefix="encoder.")
            cache[arch] = {k.removeprefix("encoder."): v for k, v in filled.items()}
        return dict(cache[arch])

    return get


def _assert_loaded(model: Backbone, official: dict[str, torch.Tensor]) -> None:
    ours = model.state_dict()
    loaded = 0
    for key, value in official.items():
        mine = model.official_encoder_key(key)
        if mine is not None:
            assert torch.equal(ours[mine], value), key
            loaded += 1
    assert loaded == len(ours) - sum(k.endswith("random_features") for k in ours)


@pytest.mark.parametrize("container", ["model", None])
def test_swin_loads_the_authors_imagenet_file(
    official_encoder: Callable[[str], dict[str, torch.Tensor]],
    tmp_path: Path,
    container: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    official = official_encoder("swin")
    path = tmp_path / "swin_stem_pooling5.pth"
    torch.save({container: official} if container else official, path)
    with caplog.at_level(logging.WARNING):
        model = create_backbone("swin", pretrained=path)
    assert not caplog.records, "a complete file leaves nothing missing or unexpected"
    _assert_loaded(model, official)
    report = model.load_pretrained(path)
    assert report.container == container and not report.missing and not report.unexpected
    # The saved attention masks and relative position indices are derived, so recomputed.
    assert len(report.ignored) == 2 * 12 and all(
        "attn_mask" in k or "position_index" in k for k in report.ignored
    )


def test_vitae_loads_the_authors_imagenet_file_and_reports_the_classifier(
    official_encoder: Callable[[str], dict[str, torch.Tensor]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    official = official_encoder("vitae")
    assert "head.weight" in official
    path = tmp_path / "vitae_s.pth.tar"
    torch.save({"state_dict_ema": official, "epoch": 300}, path)
    torch.manual_seed(0)
    model = ViTAEBackbone()
    with caplog.at_level(logging.INFO):
        report = model.load_pretrained(path)
    assert report.container == "state_dict_ema"
    assert sorted(report.ignored) == ["head.bias", "head.weight"]
    assert not report.missing and not report.unexpected
    assert report.completed == [
        "stages.0.cells.0.attn.random_features",
        "stages.0.cells.1.attn.random_features",
    ]
    assert "ignored 2 (head.weight, head.bias)" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    _assert_loaded(model, official)


def test_missing_and_unexpected_keys_are_reported(
    official_encoder: Callable[[str], dict[str, torch.Tensor]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    official = official_encoder("vitae")
    del official["layers.3.NC.1.mlp.fc2.bias"]
    official["layers.3.NC.1.extra.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save({"state_dict_ema": official}, path)
    with caplog.at_level(logging.WARNING):
        report = ViTAEBackbone().load_pretrained(path)
    assert report.missing == ["stages.3.cells.1.mlp.fc2.bias"]
    assert report.unexpected == ["layers.3.NC.1.extra.weight"]
    assert "stages.3.cells.1.mlp.fc2.bias" in caplog.text and "layers.3.NC.1.extra.weight" in caplog.text


def test_bad_imagenet_files_are_refused_with_the_fix(
    tmp_path: Path, swin: SwinBackbone, vitae: ViTAEBackbone
) -> None:
    path = tmp_path / "w.pth"
    torch.save({"model": {"patch_embed.proj1.weight": torch.zeros(48, 3, 5, 5)}}, path)
    with pytest.raises(ValueError, match=r"patch_embed\.proj1\.weight has shape \(48, 3, 5, 5\)"):
        swin.load_pretrained(path)
    torch.save({"model": {"fc.weight": torch.zeros(3)}}, path)
    with pytest.raises(ValueError, match="holds no SwinBackbone weights"):
        swin.load_pretrained(path)
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="state_dict_ema"):
        vitae.load_pretrained(path)
    with pytest.raises(FileNotFoundError, match=r"absent\.pth"):
        vitae.load_pretrained(tmp_path / "absent.pth")
    for name in ("swin", "vitae"):
        with pytest.raises(ValueError, match="needs a file"):
            create_backbone(name, pretrained=True)


def test_a_whole_p3mnet_checkpoint_gives_its_encoder(tmp_path: Path, swin: SwinBackbone) -> None:
    # e.g. the authors' P3M-Net file used as backbone.pretrained: `module.encoder.*` is taken.
    path = tmp_path / "p3mnet_swin.pth"
    norm = torch.ones(768)  # LayerNorm's initial value: the shared fixture stays as it was
    torch.save(
        {"state_dict": {"module.encoder.norm.weight": norm, "module.decoder.tfi_3.bn1.bias": norm}}, path
    )
    report = swin.load_pretrained(path)
    assert report.container == "state_dict" and report.loaded == 1
    assert report.ignored == ["decoder.tfi_3.bn1.bias"]
    assert "norm.bias" in report.missing and not report.unexpected
