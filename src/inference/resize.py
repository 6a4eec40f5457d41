"""The two resizers of the test-time strategies.

``paper`` reproduces how the official test code resized: ``skimage.transform.resize`` as in the
scikit-image 0.14.5 both official repositories pin, i.e. bilinear (order 1), ``mode='constant'``
(zeros outside the image, so border pixels blend towards 0) and no anti-aliasing. scikit-image 0.15
changed both defaults; the papers' numbers come from the old ones, so we pass them explicitly.
It runs on the CPU in float64.

``fast`` resizes on the tensor's device with ``F.interpolate`` (bilinear, ``align_corners=False``,
no anti-aliasing, edge-replicating borders). It differs from ``paper`` only near the image border
and by float rounding; ``bench/`` and the README state the measured matte difference.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from skimage.transform import resize as sk_resize
from torch import Tensor

ResizeMode = Literal["paper", "fast"]
RESIZE_MODES: tuple[str, ...] = ("paper", "fast")


def resize_maps(maps: Tensor, size: tuple[int, int], mode: ResizeMode) -> Tensor:
    """Resize ``(C, H, W)`` float maps to ``size`` = (H', W') on their device.

    Values are not rescaled: a map in [0, 255] stays in [0, 255].
    """
    if mode == "fast":
        out = F.interpolate(maps[None].float(), size=size, mode="bilinear", align_corners=False)
        return out[0]
    if mode != "paper":
        raise ValueError(f"unknown resize_mode {mode!r}; expected one of {RESIZE_MODES}")
    array = maps.detach().to("cpu", torch.float64).permute(1, 2, 0).numpy()
    # preserve_range: the official code resized uint8 images with img_as_float semantics then x255;
    # resizing float values in their own range is the same arithmetic.
    out = sk_resize(array, size, order=1, mode="constant", cval=0.0, anti_aliasing=False, preserve_range=True)
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).to(maps.device, torch.float32)
