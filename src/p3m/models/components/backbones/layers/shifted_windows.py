"""Window padding and (shifted-)window attention masks for Swin blocks at any input size.

The official P3M-Net Swin-T pads each feature map up to a multiple of the window (7) and masks the
padding out of the attention; it only knows how to do that when the map is larger than the window
and it crashes where no padding is needed (e.g. 224 px inputs). Here every size is handled the same
way: pad to a multiple of the window, cyclically shift, and let a token attend only to tokens of the
same window that are (a) real, not padding, and (b) on the same side of the wrap-around seam in both
directions. Where the official code runs, this gives exactly its masks for every real token (the
official labels of padding tokens differ, but their outputs are cropped away).
"""

from __future__ import annotations

import torch
from timm.models.swin_transformer import window_partition
from torch import Tensor

#: The official masks add -100 (not -inf) to forbidden logits; kept for bit-level parity.
MASKED_LOGIT = -100.0


def padded_size(size: int, window_size: int) -> int:
    """Smallest multiple of ``window_size`` that is at least ``size``."""
    return -(-size // window_size) * window_size


def _axis_regions(size: int, window_size: int, shift: int, device: torch.device | None) -> Tensor:
    """Region label of each position of one padded, shifted axis.

    0: a real position that did not wrap around; 1: a real position that wrapped around the end;
    2: padding.
    """
    padded = padded_size(size, window_size)
    position = torch.arange(padded, device=device)
    source = position + shift  # where the content at `position` came from, before the modulo
    wrapped = (source >= padded).long()
    return torch.where(source % padded >= size, torch.full_like(position, 2), wrapped)


def window_attention_mask(
    height: int, width: int, window_size: int, shift: int, device: torch.device | None = None
) -> Tensor | None:
    """Additive attention mask ``(num_windows, N, N)`` (0 or :data:`MASKED_LOGIT`), ``N = window_size**2``.

    Windows are ordered as :func:`timm.models.swin_transformer.window_partition` orders them. Returns
    None when no mask is needed (no shift, no padding).
    """
    no_padding = height % window_size == 0 and width % window_size == 0
    if shift == 0 and no_padding:
        return None
    rows = _axis_regions(height, window_size, shift, device)
    cols = _axis_regions(width, window_size, shift, device)
    labels = (rows[:, None] * 3 + cols[None, :]).to(torch.float32)
    windows = window_partition(labels[None, :, :, None], (window_size, window_size)).flatten(1)
    same_region = windows[:, :, None] == windows[:, None, :]
    return torch.zeros(same_region.shape, device=device).masked_fill_(~same_region, MASKED_LOGIT)
