"""A ready-to-call matting predictor: one image in (file, array or PIL image), its matte out.

``p3m.Predictor`` of the public API, also behind ``hubconf.py`` (``torch.hub.load(...,
"p3mnet_predictor")``) and the browser demo (``p3m app``). It is the per-image step of ``p3m predict``
(:func:`~p3m.inference.matting.predict_matte`) without the files around it: EXIF
orientation applied to files, photos over ``max_short_side`` predicted at that size and the matte
resized back, then the chosen test-time strategy (the papers' HYBRID by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

from p3m.data.io import MIN_IMAGE_SIDE, read_image
from p3m.inference.loading import PRECISIONS, resolve_device
from p3m.inference.matting import MattingSettings, predict_matte
from p3m.models.checkpoints import load_model
from p3m.models.test_time import RESIZE_MODES, STRATEGIES, ResizeMode
from p3m.utils.errors import SettingError


class Predictor:
    """Predict alpha mattes with a P3M-Net.

    Example:
        >>> predictor = Predictor.from_checkpoint("p3mnet_pretrained_on_p3m10k.pth")  # doctest: +SKIP
        >>> alpha = predictor("portrait.jpg")  # (H, W) float32 in [0, 1]  # doctest: +SKIP
    """

    def __init__(
        self,
        net: nn.Module,
        strategy: str = "hybrid",
        resize_mode: ResizeMode = "paper",
        device: str | torch.device = "auto",
        max_short_side: int | None = 1080,
        precision: str = "32",
    ) -> None:
        """Wrap a network.

        Args:
            net: A P3M-Net (e.g. from :func:`p3m.models.load_model`); it is moved to ``device`` and
                put in eval mode.
            strategy: ``hybrid`` (the papers'), ``resize`` or ``full``.
            resize_mode: ``paper`` (scikit-image 0.14.5 arithmetic) or ``fast``.
            device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1``...
            max_short_side: Larger photos are predicted at this short side (bounds memory); None: as is.
            precision: ``32`` (the papers' numbers), ``bf16`` or ``16`` (autocast; previews only).
        """
        self.device = _check_settings(strategy, resize_mode, device, max_short_side, precision)
        self.net = net.to(self.device).eval()
        self.strategy = strategy
        self.resize_mode: ResizeMode = resize_mode
        self.max_short_side = max_short_side
        self.precision = PRECISIONS[str(precision)]

    @classmethod
    def from_checkpoint(cls, path: str | Path, backbone: str = "auto", **settings: Any) -> Predictor:
        """Load ``path`` (ours or the authors' checkpoint) with :func:`~p3m.models.load_model` and wrap it;
        ``settings`` are this class's other arguments (``strategy``, ``device``...), checked first.

        Raises:
            SettingError: a setting with an unknown value (before the checkpoint is read).
            CheckpointNotFoundError, CheckpointError: the file is missing, unsafe or not P3M-Net's.
        """
        unknown = set(settings) - set(_SETTINGS)
        if unknown:
            raise SettingError(
                f"unknown Predictor settings {sorted(unknown)}; it takes {', '.join(_SETTINGS)}"
            )
        _check_settings(**{**_SETTINGS, **settings})
        return cls(load_model(Path(path).expanduser(), backbone=backbone), **settings)

    def __call__(
        self, image: np.ndarray | Image.Image | str | Path, strategy: str | None = None
    ) -> np.ndarray:
        """The matte of one image, at the image's size.

        Args:
            image: An image file, or a PIL image (EXIF orientation applied to both, as cameras
                intend), or an ``(H, W, 3)`` uint8 RGB array (taken as it is).
            strategy: Overrides the predictor's strategy for this call.

        Returns:
            ``(H, W)`` float32 alpha in [0, 1].
        """
        if isinstance(image, str | Path):
            rgb = read_image(image, exif=True)
        elif isinstance(image, Image.Image):
            rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        else:
            rgb = check_rgb(image)
        settings = MattingSettings(
            strategy or self.strategy, self.resize_mode, self.max_short_side, self.device, self.precision
        )
        return predict_matte(self.net, rgb, settings)


# Predictor's settings and their defaults (its __init__'s keyword arguments).
_SETTINGS: dict[str, Any] = {
    "strategy": "hybrid",
    "resize_mode": "paper",
    "device": "auto",
    "max_short_side": 1080,
    "precision": "32",
}


def _check_settings(
    strategy: str, resize_mode: str, device: str | torch.device, max_short_side: int | None, precision: str
) -> torch.device:
    """Refuse unknown values, naming the setting; returns the device (one this machine has)."""
    for name, value, allowed in (
        ("strategy", strategy, STRATEGIES),
        ("resize_mode", resize_mode, RESIZE_MODES),
        ("precision", str(precision), tuple(PRECISIONS)),
    ):
        if value not in allowed:
            raise SettingError(f"{name}={value!r}: expected one of {' | '.join(allowed)}")
    if max_short_side is not None and (
        not isinstance(max_short_side, int) or max_short_side < MIN_IMAGE_SIDE
    ):
        raise SettingError(
            f"max_short_side={max_short_side!r}: expected None or an integer >= {MIN_IMAGE_SIDE}"
        )
    return device if isinstance(device, torch.device) else resolve_device(str(device))


def check_rgb(image: np.ndarray) -> np.ndarray:
    """Accept ``(H, W, 3)`` uint8 RGB (an alpha channel or a grey image is converted); else raise."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(
            f"expected a uint8 RGB image, got dtype {array.dtype}; convert it with .astype(np.uint8)"
        )
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 4:
        return array[:, :, :3]
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {array.shape}")
    return array
