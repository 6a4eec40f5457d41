"""P3M-FCP's network side: features of the pasted image blended in between encoder stages, only
inside the face, without touching BatchNorm's running statistics."""

from __future__ import annotations

import pytest
import torch

from p3m.models.components.feature_paste import paste_features, source_pass_batchnorm
from p3m.models.components.p3mnet import P3MNet
from p3m.privacy.modes import CopyPaste


@pytest.fixture(scope="module")
def net() -> P3MNet:
    torch.manual_seed(0)
    return P3MNet("resnet34")


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(2, 3, 64, 64, generator=gen)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 16:36, 20:40] = 1.0
    source = torch.where(mask > 0, torch.randn(2, 3, 64, 64, generator=gen), image)
    return {"image": image, "cp_source": source, "cp_mask": mask}


def test_paste_features_changes_only_the_face_cells() -> None:
    target, source = torch.randn(2, 8, 16, 16), torch.randn(2, 8, 16, 16)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 18:30, 21:40] = 1.0  # partly covers the border cells of a stride-4 grid
    merged = paste_features(target, source, mask)
    cells = torch.nn.functional.adaptive_avg_pool2d(mask, (16, 16))
    outside = (cells == 0).expand_as(target)
    assert torch.equal(merged[outside], target[outside])
    full = (cells == 1).expand_as(target)
    torch.testing.assert_close(merged[full], source[full])
    assert ((cells > 0) & (cells < 1)).any()  # soft cells exist and blend
    with pytest.raises(ValueError, match="cp_mask must be"):
        paste_features(target, source, mask[:, 0])


@pytest.mark.parametrize("stage", [1, 3])
def test_fcp_pastes_features_only_inside_the_face(net: P3MNet, stage: int) -> None:
    batch = _batch()
    net.eval()
    with torch.no_grad():
        target = net.backbone.forward_stages(batch["image"], end=stage)
        source = net.backbone.forward_stages(batch["cp_source"], end=stage)
        merged = paste_features(target.x, source.x, batch["cp_mask"])
        cells = torch.nn.functional.adaptive_avg_pool2d(batch["cp_mask"], merged.shape[-2:]) > 0
        changed = (merged != target.x).any(dim=1, keepdim=True)
        assert changed.any() and not (changed & ~cells).any()
        # the pasted forward differs from the plain one; with nothing to paste it is the plain one
        plain = net(batch["image"])
        pasted = net.forward_feature_paste(batch["image"], batch["cp_source"], batch["cp_mask"], stage)
        assert not torch.equal(pasted.fusion_alpha, plain.fusion_alpha)
        nothing = net.forward_feature_paste(
            batch["image"], batch["cp_source"], torch.zeros_like(batch["cp_mask"]), stage
        )
        for a, b in zip(nothing, plain, strict=True):
            assert torch.equal(a, b)


def test_fcp_source_pass_leaves_batchnorm_running_stats_alone(net: P3MNet) -> None:
    batch = _batch(1)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    try:
        with torch.no_grad():
            net.backbone.forward_stages(batch["image"], end=2)  # a plain target pass
        after_plain = {k: v.clone() for k, v in net.state_dict().items()}
        net.load_state_dict(state)
        with torch.no_grad():
            target = net.backbone.forward_stages(batch["image"], end=2)
            with source_pass_batchnorm(net.backbone):
                net.backbone.forward_stages(batch["cp_source"], end=2)
        for key, value in net.state_dict().items():
            assert torch.equal(value, after_plain[key]), key  # running stats saw only the target
        assert all(m.track_running_stats for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
        # the target pass itself is an ordinary training forward (batch statistics)
        assert target.x.shape[1] == 64
        # gradients reach the pasted face through the source pass; with running statistics (eval),
        # only pixels within the first stage's receptive field (7x7 conv + 3x3 pool) of the face
        net.eval()
        source = batch["cp_source"].clone().requires_grad_(True)
        out = net.forward_feature_paste(batch["image"], source, batch["cp_mask"], 1)
        out.global_logits.sum().backward()
        grad = source.grad.abs().sum(dim=1, keepdim=True)
        near = torch.nn.functional.max_pool2d(batch["cp_mask"], 17, stride=1, padding=8) > 0
        assert grad[batch["cp_mask"] > 0].min() > 0 and grad[~near].abs().max() == 0
    finally:
        net.load_state_dict(state)
        net.zero_grad(set_to_none=True)


def test_fcp_stage_out_of_range(net: P3MNet) -> None:
    batch = _batch()
    with pytest.raises(ValueError, match=r"privacy.stage=6 is outside 1..5"):
        net.forward_feature_paste(batch["image"], batch["cp_source"], batch["cp_mask"], 6)
    with pytest.raises(KeyError, match="cp_source"):
        CopyPaste(level="feature").training_forward(net, batch["image"], {"image": batch["image"]})
    # the mode's forward is the network's FCP forward at the configured stage
    net.eval()
    with torch.no_grad():
        via_mode = CopyPaste(level="feature", stage=2).training_forward(net, batch["image"], batch)
        direct = net.forward_feature_paste(batch["image"], batch["cp_source"], batch["cp_mask"], 2)
    assert all(torch.equal(a, b) for a, b in zip(via_mode, direct, strict=True))
