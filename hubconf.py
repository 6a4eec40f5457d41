"""torch.hub entry points of P3M-Net: ``torch.hub.load(REPO_DIR, "p3mnet", source="local", ...)``.

    net = torch.hub.load(REPO_DIR, "p3mnet", source="local", backbone="resnet34", weights=PATH_OR_NONE)
    predict = torch.hub.load(REPO_DIR, "p3mnet_predictor", source="local", weights=PATH)
    alpha = predict("portrait.jpg")  # a file, PIL image or (H, W, 3) uint8 RGB -> (H, W) float32 in [0, 1]

``weights`` is any checkpoint ``p3m eval`` reads (ours, or the authors' released files), always loaded
with ``torch.load(weights_only=True)``. Nothing is downloaded: get the files first (README, "Data and
weights").
"""

import sys
from pathlib import Path

dependencies = ["torch", "torchvision", "timm", "numpy", "cv2", "skimage", "scipy"]

_SRC = str(Path(__file__).resolve().parent / "src")
sys.path.insert(0, _SRC)  # this checkout's package, for this import only
try:
    import p3m
    from p3m.inference.loading import resolve_device
    from p3m.models import P3MNet
finally:
    sys.path.remove(_SRC)


def p3mnet(backbone=None, weights=None, device="cpu"):
    """P3M-Net in eval mode, fp32: ``weights`` loaded (their backbone unless ``backbone`` says), or random.

    A device this machine lacks is refused before anything loads (``p3m.utils.errors.SettingError``).
    """
    device = resolve_device(str(device))
    if weights is None:
        return P3MNet(backbone or "resnet34").float().eval().to(device)
    return p3m.load_model(Path(weights).expanduser(), backbone=backbone or "auto").to(device)


def p3mnet_predictor(weights, backbone=None, **settings):
    """:class:`p3m.Predictor` of ``weights``; ``settings``: strategy, resize_mode, device, max_short_side,
    precision, each checked before the weights are read (``p3m.utils.errors.SettingError``)."""
    return p3m.Predictor.from_checkpoint(weights, backbone=backbone or "auto", **settings)
