"""Test-time strategies of the official P3M code: RESIZE, HYBRID, plus a single full-size pass.

All strategies take an un-normalised RGB image and return mattes at the input size:

- ``resize``: one pass at half size; the fused matte is resized back (the ACM MM "RESIZE").
- ``hybrid``: the global trimap comes from a half-size pass, the local matte from a full-size pass,
  fused with the official test-time rule: where the resized trimap is exactly 0 or 255 keep it,
  everywhere else take the local matte (the ACM MM "HYBRID").
- ``full``: one pass at full size, fused by the network.

Pass sizes follow the official code: the scaled side is rounded *down* to a multiple of 32 and
capped at 1600 (each side independently, so very large images are squashed, as the official code
does), and every map is resized back to the input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from p3m.models.test_time.resize import ResizeMode, resize_maps
from p3m.utils.conventions import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TRIMAP_BACKGROUND,
    TRIMAP_FOREGROUND,
    TRIMAP_VALUES,
)
from p3m.utils.errors import SettingError

STRATEGIES: tuple[str, ...] = ("resize", "hybrid", "full")
MAX_SIDE = 1600


class TestTimeOutput(NamedTuple):
    """Mattes at the input resolution, float32 in [0, 1], shape (H, W)."""

    alpha: Tensor
    """The final matte of the strategy."""
    trimap: Tensor
    """The predicted trimap 0/128/255 (uint8) of the global branch, resized to full size."""
    local_alpha: Tensor
    """The local (matting) branch's matte."""


def pass_size(height: int, width: int, ratio: float, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """The official pass size: ``int(side * ratio)`` rounded down to a multiple of 32, capped."""
    sizes = []
    for side in (height, width):
        scaled = int(side * ratio)
        sizes.append(min(max_side, scaled - scaled % 32))
    if min(sizes) < 32:
        raise ValueError(
            f"image of {height}x{width} is too small for a pass at ratio {ratio}: "
            "both sides must reach at least 32 px after scaling (64 px for resize/hybrid)"
        )
    return sizes[0], sizes[1]


def _normalise(image: Tensor) -> Tensor:
    """(3, H, W) float in [0, 255] -> (1, 3, H, W) ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    return ((image / 255.0 - mean) / std)[None]


def _segmentation_to_trimap(global_logits: Tensor) -> Tensor:
    """(1, 3, H, W) logits -> (1, H, W) uint8 trimap 0/128/255 by argmax."""
    levels = torch.tensor(TRIMAP_VALUES, dtype=torch.uint8, device=global_logits.device)
    return levels[global_logits.max(dim=1).indices]  # the first maximum, as argmax; faster on the CPU


def _input(image: Tensor, size: tuple[int, int], mode: ResizeMode) -> Tensor:
    # the official code feeds float32(resize(img) * 255.0) / 255 to the network
    return _normalise(resize_maps(image, size, mode, uint8_range=True).float())


def _full_pass(net: nn.Module, x: Tensor, precision: torch.dtype | None) -> tuple[Tensor, Tensor, Tensor]:
    """All outputs: trimap (0..255), local and fused mattes at the pass size."""
    with _autocast(x, precision):
        out = net(x)
    return (
        _segmentation_to_trimap(out.global_logits),
        out.local_alpha[:, 0].float(),
        out.fusion_alpha[:, 0].float(),
    )


def _trimap_pass(net: nn.Module, x: Tensor, precision: torch.dtype | None) -> Tensor:
    """The trimap only; a P3MNet skips its local decoder (other nets, e.g. ONNX, run in full)."""
    with _autocast(x, precision):
        logits = net.segment(x) if hasattr(net, "segment") else net(x).global_logits  # type: ignore[operator]
    return _segmentation_to_trimap(logits)


def _local_pass(net: nn.Module, x: Tensor, precision: torch.dtype | None) -> Tensor:
    """The local matte only; a P3MNet skips the global logits and side heads."""
    with _autocast(x, precision):
        local = net.matte(x) if hasattr(net, "matte") else net(x).local_alpha  # type: ignore[operator]
    return local[:, 0].float()


def _autocast(x: Tensor, precision: torch.dtype | None) -> torch.autocast:
    return torch.autocast(x.device.type, dtype=precision, enabled=precision is not None)


class PassMaps(NamedTuple):
    """What the network made at its pass sizes; a strategy's mattes are these, resized to the output size."""

    trimap: Tensor
    """(1, h, w) uint8 0/128/255 of the trimap pass (half size for ``resize`` and ``hybrid``)."""
    local: Tensor
    """(1, h, w) float32 local matte of the matting pass."""
    fusion: Tensor | None
    """(1, h, w) float32 fused matte (``resize``, ``full``); None: ``hybrid`` fuses at the output size."""


@torch.no_grad()
def network_passes(
    net: nn.Module,
    image: Tensor,
    strategy: str = "hybrid",
    resize_mode: ResizeMode = "paper",
    max_side: int = MAX_SIDE,
    precision: torch.dtype | None = None,
) -> PassMaps:
    """Run the network passes of a strategy (the arguments are :func:`infer_alpha`'s)."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"infer_alpha takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    return batched_network_passes(net, [image], strategy, resize_mode, max_side, precision)[0]


@torch.no_grad()
def batched_network_passes(
    net: nn.Module,
    images: Sequence[Tensor],
    strategy: str = "hybrid",
    resize_mode: ResizeMode = "paper",
    max_side: int = MAX_SIDE,
    precision: torch.dtype | None = None,
) -> list[PassMaps]:
    """:func:`network_passes` of several ``(3, H, W)`` pictures of one size, one batch per pass.

    The frames of a video share a size, and a batch keeps the network busier than one picture at a
    time (docs/performance.md measures it). Each picture's network input is resized on its own, as
    alone; only the network sees them together, so every picture's maps equal its own
    :func:`network_passes` within float rounding (a batch sums in another order).
    """
    if strategy not in STRATEGIES:
        raise SettingError(f"unknown test_strategy {strategy!r}; expected one of {STRATEGIES}")
    shapes = {tuple(image.shape) for image in images}
    if len(shapes) != 1 or images[0].dim() != 3 or images[0].shape[0] != 3:
        raise ValueError(f"expected RGB images of one shape (3, H, W), got shapes {sorted(shapes)}")
    height, width = images[0].shape[-2:]

    def inputs(ratio: float) -> Tensor:
        size = pass_size(height, width, ratio, max_side)
        return torch.cat([_input(image, size, resize_mode) for image in images])

    if strategy == "hybrid":
        trimaps = _trimap_pass(net, inputs(0.5), precision)
        locals_ = _local_pass(net, inputs(1.0), precision)
        return [PassMaps(trimaps[i : i + 1], locals_[i : i + 1], None) for i in range(len(images))]
    trimaps, locals_, fusions = _full_pass(net, inputs(1.0 if strategy == "full" else 0.5), precision)
    return [PassMaps(trimaps[i : i + 1], locals_[i : i + 1], fusions[i : i + 1]) for i in range(len(images))]


def _alpha_rows(
    maps: PassMaps, size: tuple[int, int], mode: ResizeMode, rows: tuple[int, int] | None
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The matte (unclamped) at ``size`` for output ``rows``, and hybrid's resized trimap and local matte."""
    if maps.fusion is not None:
        return resize_maps(maps.fusion, size, mode, rows=rows)[0], None, None
    trimap = resize_maps(maps.trimap, size, mode, uint8_range=True, rows=rows)[0]
    local = resize_maps(maps.local, size, mode, rows=rows)[0]
    # The official rule tests the resized trimap for exactly 0 or 255 in the precision it was
    # resized in (float64 in `paper` mode): its last bits decide which pixels take the local matte.
    certain = (trimap == TRIMAP_BACKGROUND) | (trimap == TRIMAP_FOREGROUND)
    return torch.where(certain, trimap / 255.0, local), trimap, local


def matte_rows(
    maps: PassMaps,
    size: tuple[int, int],
    resize_mode: ResizeMode = "paper",
    rows: tuple[int, int] | None = None,
) -> Tensor:
    """The strategy's matte at the output ``size``, float32 in [0, 1]: rows ``rows[0]:rows[1]`` only.

    Row by row the values are those :func:`infer_alpha` gives (``paper`` mode resizes only the input
    rows a band reads), so a large matte can be made in bands without holding several float64
    copies of it. ``fast`` mode resizes whole maps and then takes the band's rows.
    """
    return _alpha_rows(maps, size, resize_mode, rows)[0].clamp(0, 1).float()


@torch.no_grad()
def infer_alpha(
    net: nn.Module,
    image: Tensor,
    strategy: str = "hybrid",
    resize_mode: ResizeMode = "paper",
    max_side: int = MAX_SIDE,
    precision: torch.dtype | None = None,
    out_size: tuple[int, int] | None = None,
) -> TestTimeOutput:
    """Predict the matte of one image with an official test-time strategy.

    Args:
        net: A P3M-Net (or anything returning its :class:`~p3m.models.components.p3mnet.P3MOutput`,
            e.g. the ONNX runtime's) in eval mode. HYBRID calls its ``segment``/``matte`` methods
            where it has them (same numbers, less work).
        image: ``(3, H, W)`` or ``(1, 3, H, W)`` RGB, uint8 or float in [0, 255], on the net's device.
        strategy: ``resize``, ``hybrid`` or ``full``.
        resize_mode: ``paper`` (scikit-image 0.14.5's arithmetic, bit for bit, float64) or ``fast``
            (``F.interpolate``, float32); both run on the image's device.
        max_side: Cap of each pass side (official: 1600).
        out_size: (H, W) of the mattes when not the image's: e.g. the photo's size when ``image`` is a
            shrunk copy of it, so the mattes are resized once, from the pass sizes.
        precision: None for fp32; ``torch.bfloat16``/``torch.float16`` run the network under autocast
            (faster; the mattes move: docs/performance.md measures how much).
    """
    maps = network_passes(net, image, strategy, resize_mode, max_side, precision)
    height, width = image.shape[-2:]
    full = (height, width) if out_size is None else (int(out_size[0]), int(out_size[1]))
    alpha, trimap_full, local_full = _alpha_rows(maps, full, resize_mode, None)
    if trimap_full is None or local_full is None:
        trimap_full = resize_maps(maps.trimap, full, resize_mode, uint8_range=True)[0]
        local_full = resize_maps(maps.local, full, resize_mode)[0]
    # the resized trimap is continuous; report the nearest of 0/128/255
    device = trimap_full.device
    classes = torch.bucketize(trimap_full, torch.tensor([64.0, 192.0], device=device))
    trimap_out = torch.tensor(TRIMAP_VALUES, dtype=torch.uint8, device=device)[classes]
    return TestTimeOutput(alpha.clamp(0, 1).float(), trimap_out, local_full.clamp(0, 1).float())
