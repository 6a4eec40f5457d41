"""P3M-FCP's network side: blend the features of a pasted image into the target's between encoder
stages (Ma et al., IJCV 2023). The pixel side (which face, where) is :mod:`p3m.privacy.copy_paste`.

Choices where the papers are silent (docs/privacy.md lists them all):

- the mask is area-downsampled to the feature's resolution and blended softly:
  ``x = x_t * (1 - m) + x_s * m``; where ``m == 0`` the features are exactly the target's;
- BatchNorm: the source pass uses its own batch statistics without updating the running statistics
  (:func:`source_pass_batchnorm`), so the running statistics see exactly the anonymized training
  images; in evaluation mode both passes use the running statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@contextlib.contextmanager
def source_pass_batchnorm(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers use batch statistics but do not update their running statistics.

    In training mode a BatchNorm normalises with the batch's statistics and moves its running
    averages towards them; with ``track_running_stats`` off for the duration it normalises with the
    batch's statistics only. In evaluation mode nothing changes (the running statistics are used).
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.track_running_stats for m in norms]
    try:
        for m in norms:
            m.track_running_stats = False
        yield
    finally:
        for m, value in zip(norms, saved, strict=True):
            m.track_running_stats = value


def paste_features(target: Tensor, source: Tensor, mask: Tensor) -> Tensor:
    """Blend source features into target features inside the (area-downsampled) face mask.

    Args:
        target: ``(N, C, h, w)`` features of the target image.
        source: the same shape, features of the pasted image.
        mask: ``(N, 1, H, W)`` paste mask in [0, 1] at the input resolution (any multiple of h, w).

    Returns:
        ``target * (1 - m) + source * m`` with ``m`` the mask averaged over each feature cell, so
        the result equals ``target`` exactly wherever no face pixel falls into the cell.
    """
    if source.shape != target.shape:
        raise ValueError(
            f"source features {tuple(source.shape)} differ from the target's {tuple(target.shape)}"
        )
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != target.shape[0]:
        raise ValueError(f"cp_mask must be (N, 1, H, W) with N={target.shape[0]}, got {tuple(mask.shape)}")
    m = F.adaptive_avg_pool2d(mask.to(target.dtype), (target.shape[-2], target.shape[-1]))
    return torch.where(m > 0, target * (1 - m) + source * m, target)
