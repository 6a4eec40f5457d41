"""P3MLoss: parity with the official loss values, explicit weights, and behaviour without fg/bg."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import Tensor

from p3m.models.components.p3mnet import P3MOutput
from p3m.models.losses import TERM_NAMES, P3MLoss, official_gauss_kernel, segmentation_target
from tests.fixtures import load_npz

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
TOL = 1e-5


@pytest.fixture(scope="module")
def official(reference_dir: Path) -> dict:
    """The official 128x128 loss fixture: inputs, predictions and every official term."""
    return load_npz(reference_dir / "losses_128.npz")


def _output(fx: dict) -> P3MOutput:
    return P3MOutput(
        fx["pred_global"],
        fx["pred_local"],
        fx["pred_fusion"],
        fx["pred_side2"],
        fx["pred_side1"],
        fx["pred_side0"],
    )


def _batch(fx: dict) -> dict[str, Tensor]:
    # Our batch alpha is in [0, 1]; the official functions take 0..255 and divide by 255 themselves.
    return {
        "image": fx["image"],
        "alpha": fx["alpha255"] / 255.0,
        "trimap": fx["trimap"],
        "fg": fx["fg"],
        "bg": fx["bg"],
    }


def _toy(n: int = 2, size: int = 32, seed: int = 0) -> tuple[P3MOutput, dict[str, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    trimap = torch.full((n, 1, size, size), 128.0)
    trimap[..., : size // 4, :] = 0.0
    trimap[..., -size // 4 :, :] = 255.0
    alpha = (trimap / 255.0).clone()
    alpha[trimap == 128] = torch.rand(int((trimap == 128).sum()), generator=g)
    logits = [torch.randn(n, 3, size, size, generator=g) for _ in range(4)]
    alphas = [torch.rand(n, 1, size, size, generator=g) for _ in range(2)]
    out = P3MOutput(logits[0], alphas[0], alphas[1], logits[1], logits[2], logits[3])
    batch = {"alpha": alpha, "trimap": trimap}
    batch.update({k: torch.randn(n, 3, size, size, generator=g) for k in ("image", "fg", "bg")})
    return out, batch


def test_every_term_matches_official(official: dict) -> None:
    raw = P3MLoss().raw_terms(_output(official), _batch(official))
    assert tuple(raw) == TERM_NAMES
    errors = {name: abs(raw[name].item() - official["official"][name]) for name in TERM_NAMES}
    assert max(errors.values()) < TOL, errors


def test_total_matches_official(official: dict) -> None:
    terms = P3MLoss()(_output(official), _batch(official))
    assert terms["total"].dtype == torch.float32
    assert abs(terms["total"].item() - official["official"]["total"]) < TOL


def test_output_may_be_mapping_or_official_tuple(official: dict) -> None:
    out = _output(official)
    batch = _batch(official)
    loss = P3MLoss()
    expected = loss(out, batch)["total"]
    assert torch.equal(loss(out._asdict(), batch)["total"], expected)
    assert torch.equal(loss(tuple(out), batch)["total"], expected)


def test_default_weights_are_the_official_train_py() -> None:
    """seg/6 + 2*(local alpha + local laplacian) + 3*(fusion alpha + fusion laplacian) + composition."""
    out, batch = _toy()
    loss = P3MLoss()
    raw = loss.raw_terms(out, batch)
    seg = raw["ce_side2"] + raw["ce_side1"] + raw["ce_side0"] + 3 * raw["ce_global"]
    expected = (
        seg / 6
        + 2 * (raw["alpha_unknown"] + raw["laplacian_unknown"])
        + 2 * (raw["alpha_whole"] + raw["laplacian_whole"])
        + (raw["alpha_whole"] + raw["laplacian_whole"])
        + raw["composition"]
    )
    terms = loss(out, batch)
    torch.testing.assert_close(terms["total"], expected)
    for name in TERM_NAMES:
        torch.testing.assert_close(terms[name], loss.weights[name] * raw[name])


def test_zero_composition_weight_needs_no_fg_bg() -> None:
    out, batch = _toy()
    full = P3MLoss()(out, batch)
    light = {k: batch[k] for k in ("alpha", "trimap")}
    terms = P3MLoss(composition=0.0)(out, light)
    assert "composition" not in terms
    torch.testing.assert_close(terms["total"], full["total"] - full["composition"])


def test_all_zero_weights_are_refused_not_a_stop_iteration() -> None:
    # A StopIteration escaping training_step ends Lightning's epoch silently: a max_steps run looped forever.
    out, batch = _toy()
    zeros = dict.fromkeys(
        ("seg_scale", "local_alpha", "local_laplacian", "fusion_alpha", "fusion_laplacian"), 0.0
    )
    with pytest.raises(ValueError, match="every weight is 0"):
        P3MLoss(**zeros, composition=0.0)(out, batch)


def test_missing_fg_names_the_key_and_the_fix() -> None:
    out, batch = _toy()
    del batch["fg"]
    with pytest.raises(KeyError, match=r"no 'fg'.*composition.*no_composition"):
        P3MLoss()(out, batch)


def test_alpha_without_channel_dim_is_rejected() -> None:
    out, batch = _toy()
    batch["alpha"] = batch["alpha"][:, 0]
    with pytest.raises(ValueError, match=r"'alpha' has shape \(2, 32, 32\)"):
        P3MLoss()(out, batch)


def test_every_prediction_gets_a_gradient() -> None:
    out, batch = _toy()
    out = P3MOutput(*(t.clone().requires_grad_() for t in out))
    P3MLoss()(out, batch)["total"].backward()
    for name, tensor in out._asdict().items():
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0, name


def test_float32_under_autocast() -> None:
    out, batch = _toy()
    low = P3MOutput(*(t.bfloat16() for t in out))
    loss = P3MLoss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = loss(low, batch)
    reference = loss(P3MOutput(*(t.float() for t in low)), batch)
    for name, value in terms.items():
        assert value.dtype == torch.float32, name
        torch.testing.assert_close(value, reference[name], rtol=1e-6, atol=1e-6)


def test_segmentation_target_from_resized_trimap() -> None:
    trimap = torch.tensor([0.0, 0.4, 64.0, 128.0, 200.5, 254.9, 255.0]).view(1, 1, 1, -1)
    assert segmentation_target(trimap).tolist() == [[[0, 1, 1, 1, 1, 1, 2]]]


def test_unknown_region_terms_ignore_known_pixels() -> None:
    """Errors outside trimap == 128 do not change the local terms (beyond the sqrt(eps) floor)."""
    out, batch = _toy()
    loss = P3MLoss()
    names = ("alpha_unknown", "laplacian_unknown")
    before = loss.raw_terms(out, batch, names)
    local = out.local_alpha.clone()
    local[batch["trimap"] != 128] = 1.0 - batch["alpha"][batch["trimap"] != 128]
    after = loss.raw_terms(out._replace(local_alpha=local), batch, names)
    for name in names:
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=1e-7)


def test_alpha_known_of_ones_is_the_official_loss() -> None:
    out, batch = _toy()
    loss = P3MLoss()
    plain = loss(out, batch)
    known = loss(out, {**batch, "alpha_known": torch.ones_like(batch["alpha"])})
    for name, value in plain.items():
        torch.testing.assert_close(known[name], value, rtol=0, atol=0)


def test_alpha_in_the_unknown_band_supervises_nothing() -> None:
    """Where alpha_known is 0 (a binary mask's band), neither the label nor fg/bg move a term but the
    cross-entropies; the known pixels still count."""
    out, batch = _toy(seed=3)
    band = torch.zeros_like(batch["alpha"])
    band[..., 12:20, :] = 1.0
    batch["alpha_known"] = 1.0 - band
    loss = P3MLoss()
    before = loss(out, batch)
    other = dict(batch)
    other["alpha"] = torch.where(band > 0, 1.0 - batch["alpha"], batch["alpha"])
    other.update({k: torch.where(band > 0, -batch[k], batch[k]) for k in ("fg", "bg")})
    after = loss(out, other)
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, rtol=1e-6, atol=1e-6)
    outside = dict(other, alpha=torch.where(band > 0, other["alpha"], 1.0 - other["alpha"]))
    changed = loss(out, outside)
    for name in ("alpha_whole", "laplacian_whole", "alpha_unknown"):
        assert not torch.allclose(changed[name], before[name]), name


def test_kernel_is_a_non_persistent_buffer_that_follows_the_module() -> None:
    loss = P3MLoss()
    assert "gauss_kernel" not in loss.state_dict()
    assert torch.equal(loss.gauss_kernel, official_gauss_kernel())
    # Official quirk: squared 1-D Gaussians, row and column terms summed (not multiplied).
    g = torch.exp(-((torch.arange(5, dtype=torch.float64) - 2) ** 2))
    expected = (g[:, None] + g[None, :]) / (10 * g.sum())
    torch.testing.assert_close(official_gauss_kernel()[0, 0].double(), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", ["paper", "no_composition", "alpha_only"])
def test_loss_configs_instantiate(name: str) -> None:
    with initialize_config_dir(config_dir=os.fspath(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=None, overrides=[f"+loss={name}"])
    loss = instantiate(cfg.loss)
    assert isinstance(loss, P3MLoss)
    if name == "paper":
        assert loss.weights == P3MLoss().weights
    else:
        assert loss.weights["composition"] == 0.0
