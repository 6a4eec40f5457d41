"""P3M: privacy-preserving portrait matting (P3M-Net, P3M-10k) with PyTorch Lightning and Hydra.

The public API::

    import p3m

    net = p3m.load_model("p3mnet_pretrained_on_p3m10k.pth")      # ours or the authors' checkpoint
    predictor = p3m.Predictor(net, strategy="hybrid")           # or p3m.Predictor.from_checkpoint(path)
    alpha = predictor("portrait.jpg")                           # (H, W) float32 in [0, 1]

The names resolve on first use, so ``import p3m`` (and ``p3m --help``) does not wait for torch.
Importing p3m changes nothing of the caller's: no environment variable, ``sys.path`` or module alias.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from p3m.inference.predictor import Predictor
    from p3m.models.checkpoints import load_model

__all__ = ["Predictor", "__version__", "load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from p3m.models.checkpoints import load_model

        return load_model
    if name == "Predictor":
        from p3m.inference.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'p3m' has no attribute {name!r}")
