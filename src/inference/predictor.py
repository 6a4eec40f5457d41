"""A ready-to-call matting predictor: one image in (array or file), its matte out.

Used by ``hubconf.py`` (``torch.hub.load(..., "p3mnet_predictor")``) and the browser demo
(``src/app.py``). It is the per-image step of ``src/predict.py``
(:func:`~src.inference.matting.predict_matte`) without the files around it: EXIF
orientation applied to files, photos over ``max_short_side`` predicted at that size and the matte
resized back, then the chosen test-time strategy (the papers' HYBRID by default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from src.data.io import read_image
from src.inference.matting import MattingSettings, predict_matte
from src.inference.runner import PRECISIONS, resolve_device
from src.models.test_time import STRATEGIES, ResizeMode


class MattePredictor:
    """Predict alpha mattes with a P3M-Net.

    Example:
        >>> predictor = MattePredictor(load_model("p3mnet_pretrained_on_p3m10k.pth"))  # doctest: +SKIP
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
            net: A P3M-Net (e.g. from :func:`src.models.load_model`); it is moved to ``device`` and
                put in eval mode.
            strategy: ``hybrid`` (the papers'), ``resize`` or ``full``.
            resize_mode: ``paper`` (scikit-image 0.14.5 arithmetic) or ``fast``.
            device: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:1``...
            max_short_side: Larger photos are predicted at this short side (bounds memory); None: as is.
            precision: ``32`` (the papers' numbers), ``bf16`` or ``16`` (autocast; previews only).
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy={strategy!r}: expected one of {', '.join(STRATEGIES)}")
        if str(precision) not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: expected one of {' | '.join(PRECISIONS)}")
        self.device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
        self.net = net.to(self.device).eval()
        self.strategy = strategy
        self.resize_mode: ResizeMode = resize_mode
        self.max_short_side = max_short_side
        self.precision = PRECISIONS[str(precision)]

    def __call__(self, image: np.ndarray | str | Path, strategy: str | None = None) -> np.ndarray:
        """The matte of one image, at the image's size.

        Args:
            image: An ``(H, W, 3)`` uint8 RGB array, or an image file (EXIF orientation applied).
            strategy: Overrides the predictor's strategy for this call.

        Returns:
            ``(H, W)`` float32 alpha in [0, 1].
        """
        rgb = read_image(image, exif=True) if isinstance(image, str | Path) else check_rgb(image)
        settings = MattingSettings(
            strategy or self.strategy, self.resize_mode, self.max_short_side, self.device, self.precision
        )
        return predict_matte(self.net, rgb, settings)


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
