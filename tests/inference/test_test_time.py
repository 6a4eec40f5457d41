"""Test-time strategies: pass sizes, the HYBRID fusion rule and input checks, with a stand-in network."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from p3m.models import P3MNet, P3MOutput
from p3m.models.test_time import (
    STRATEGIES,
    batched_network_passes,
    infer_alpha,
    network_passes,
    pass_size,
    resize_maps,
)


class ThreeBands(nn.Module):
    """Predicts background | transition | foreground in vertical thirds and a constant local alpha."""

    def __init__(self, local_value: float = 0.3) -> None:
        super().__init__()
        self.local_value = local_value
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: Tensor) -> P3MOutput:
        n, _, h, w = x.shape
        self.sizes.append((h, w))
        cls = torch.zeros(n, h, w, dtype=torch.long)
        cls[..., w // 3 : 2 * w // 3] = 1
        cls[..., 2 * w // 3 :] = 2
        logits = torch.nn.functional.one_hot(cls, 3).permute(0, 3, 1, 2).float() * 10
        local = torch.full((n, 1, h, w), self.local_value)
        fusion = torch.where(cls[:, None] == 2, 1.0, torch.where(cls[:, None] == 1, local, 0.0))
        return P3MOutput(logits, local, fusion, logits, logits, logits)


@pytest.mark.parametrize(
    ("size", "ratio", "expected"),
    [((1080, 1620), 0.5, (512, 800)), ((1080, 1620), 1.0, (1056, 1600)), ((4000, 3000), 1.0, (1600, 1600))],
)
def test_pass_size_rounds_down_to_32_and_caps_at_1600(size, ratio, expected) -> None:
    assert pass_size(*size, ratio) == expected


def test_pass_size_rejects_tiny_images() -> None:
    with pytest.raises(ValueError, match="too small"):
        pass_size(40, 500, 0.5)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("resize_mode", ["paper", "fast"])
def test_strategies_return_input_sized_mattes(strategy: str, resize_mode: str) -> None:
    net = ThreeBands()
    image = torch.randint(0, 256, (3, 130, 198), dtype=torch.uint8)
    out = infer_alpha(net, image, strategy, resize_mode)
    assert out.alpha.shape == out.local_alpha.shape == out.trimap.shape == (130, 198)
    assert out.trimap.dtype == torch.uint8 and set(out.trimap.unique().tolist()) <= {0, 128, 255}
    assert out.alpha.min() >= 0 and out.alpha.max() <= 1
    expected_sizes = {"resize": [(64, 96)], "full": [(128, 192)], "hybrid": [(64, 96), (128, 192)]}
    assert net.sizes == expected_sizes[strategy]


def test_hybrid_keeps_certain_trimap_and_takes_local_elsewhere() -> None:
    out = infer_alpha(
        ThreeBands(local_value=0.3), torch.full((3, 128, 192), 128, dtype=torch.uint8), "hybrid"
    )
    left, middle, right = out.alpha[1:-1, :40], out.alpha[1:-1, 80:110], out.alpha[1:-1, 160:-1]
    assert torch.all(left == 0) and torch.all(right == 1)
    assert torch.allclose(middle, torch.tensor(0.3))
    # paper mode resizes with zeros outside the image, as scikit-image 0.14.5 did: the resized trimap
    # is not exactly 255 on the border pixels of a foreground region, so HYBRID takes the local alpha there
    assert torch.allclose(out.alpha[0, 160:], torch.tensor(0.3))


def test_bad_inputs_raise_clear_errors() -> None:
    net = ThreeBands()
    with pytest.raises(ValueError, match="test_strategy"):
        infer_alpha(net, torch.zeros(3, 64, 64), "bogus")
    with pytest.raises(ValueError, match="RGB"):
        infer_alpha(net, torch.zeros(1, 64, 64), "full")
    with pytest.raises(ValueError, match="resize_mode"):
        infer_alpha(net, torch.zeros(3, 64, 64), "full", "bogus")  # type: ignore[arg-type]  # on purpose


class OutputsOnly(nn.Module):
    """A P3M-Net seen only through ``forward`` (as an ONNX session is): no ``segment``/``matte``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> P3MOutput:
        return self.net(x)


@pytest.mark.parametrize("resize_mode", ["paper", "fast"])
def test_hybrid_through_segment_and_matte_equals_the_full_passes(resize_mode: str) -> None:
    torch.manual_seed(0)
    net = P3MNet("resnet34").eval()
    image = torch.randint(
        0, 256, (3, 130, 100), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
    )
    lean = infer_alpha(net, image, "hybrid", resize_mode)
    plain = infer_alpha(OutputsOnly(net), image, "hybrid", resize_mode)
    for ours, reference in zip(lean, plain, strict=True):
        assert torch.equal(ours, reference)


def test_bf16_autocast_keeps_shapes_and_stays_close() -> None:
    torch.manual_seed(0)
    net = P3MNet("resnet34").eval()
    image = torch.randint(0, 256, (3, 96, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    fp32 = infer_alpha(net, image, "full", "fast").local_alpha
    bf16 = infer_alpha(net, image, "full", "fast", precision=torch.bfloat16).local_alpha
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert 0 < (bf16 - fp32).abs().mean() < 0.05  # bf16 really ran, and stayed near the fp32 matte


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_out_size_resizes_the_pass_outputs_once(strategy: str) -> None:
    """A shrunk photo's mattes go from the pass sizes straight to the photo's size (predict's
    max_short_side), not to the shrunk size and then again."""
    image = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    net = ThreeBands()
    out = infer_alpha(net, image, strategy, "paper", out_size=(150, 200))
    assert out.alpha.shape == out.trimap.shape == out.local_alpha.shape == (150, 200)
    if strategy != "hybrid":  # the fused matte is one resize of the (single) pass's fusion output
        fusion = net(torch.zeros(1, 3, *net.sizes[0])).fusion_alpha[0]
        expected = resize_maps(fusion, (150, 200), "paper")[0].float()
        torch.testing.assert_close(out.alpha, expected.clamp(0, 1), rtol=0, atol=0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_batch_gives_each_picture_its_own_maps(strategy: str) -> None:
    """A video's frames go through the network together: each frame's maps are those it gets alone,
    within float rounding (a batch sums in another order)."""
    torch.manual_seed(0)
    net = P3MNet("resnet34").eval()
    generator = torch.Generator().manual_seed(4)
    images = [torch.randint(0, 256, (3, 96, 64), dtype=torch.uint8, generator=generator) for _ in range(3)]
    for image, together in zip(images, batched_network_passes(net, images, strategy), strict=True):
        alone = network_passes(net, image, strategy)
        assert (together.fusion is None) == (alone.fusion is None) == (strategy == "hybrid")
        assert together.trimap.shape == alone.trimap.shape and together.local.shape == alone.local.shape
        assert (together.trimap == alone.trimap).float().mean() > 0.99  # argmax of near-equal logits
        torch.testing.assert_close(together.local, alone.local, rtol=0, atol=1e-4)
        if alone.fusion is not None and together.fusion is not None:
            torch.testing.assert_close(together.fusion, alone.fusion, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="one shape"):
        batched_network_passes(net, [images[0], images[0][:, :64]], strategy)
