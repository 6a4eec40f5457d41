"""torch.hub entry points of P3M-Net.

    net = torch.hub.load(REPO_DIR, "p3mnet", source="local", backbone="resnet34", weights=PATH_OR_NONE)
    predict = torch.hub.load(REPO_DIR, "p3mnet_predictor", source="local", weights=PATH)
    alpha = predict("portrait.jpg")  # or an (H, W, 3) uint8 RGB array -> (H, W) float32 in [0, 1]

``weights`` is any checkpoint ``src/eval.py`` reads: ours (Lightning or ``P3MNet.state_dict()``) or
the authors' released files, always loaded with ``torch.load(weights_only=True)``. Nothing is
downloaded: get the files first (README, "Data and weights").

This project's package is called ``src``, a name many projects use. So that loading it never picks up
(or replaces) a caller's own ``src``, every entry point imports ours with the ``src`` entries of
``sys.modules`` swapped: the caller's entries are set aside, ours are imported from this directory
(or taken from the previous call's cache), and on the way out ours go back to the cache and the
caller's are restored. Our modules keep working afterwards because they hold references to each
other; the predictor swaps again around every call for the imports made at call time. The swap is
not thread-safe: load from one thread.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

dependencies = ["torch", "torchvision", "timm", "numpy", "cv2", "skimage", "scipy"]

_ROOT = Path(__file__).resolve().parent
_PACKAGE = "src"
_CACHE = "_p3m_hub_modules"  # a module in sys.modules holding our modules between calls, per repo dir


def _is_package_entry(name: str) -> bool:
    return name == _PACKAGE or name.startswith(_PACKAGE + ".")


def _is_ours(module: types.ModuleType | None) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().parent == _ROOT / _PACKAGE


def _cache() -> dict[str, types.ModuleType]:
    holder = sys.modules.get(_CACHE)
    if holder is None:
        holder = types.ModuleType(_CACHE, "P3M hub: the project's `src` modules, set aside between calls")
        holder.by_root = {}  # type: ignore[attr-defined]
        sys.modules[_CACHE] = holder
    return holder.by_root.setdefault(str(_ROOT), {})  # type: ignore[attr-defined]


@contextlib.contextmanager
def project_modules() -> Iterator[None]:
    """Make ``import src...`` resolve to this repository's package inside the block (see the docstring)."""
    if _is_ours(sys.modules.get(_PACKAGE)):  # the caller imported this very package: share it
        yield
        return
    cache = _cache()
    theirs = {name: sys.modules.pop(name) for name in list(sys.modules) if _is_package_entry(name)}
    sys.modules.update(cache)
    sys.path.insert(0, str(_ROOT))
    importlib.invalidate_caches()
    try:
        package = importlib.import_module(_PACKAGE)
        if not _is_ours(package):
            raise ImportError(f"imported {package!r} instead of {_ROOT / _PACKAGE}; please report this")
        yield
    finally:
        sys.path.remove(str(_ROOT))
        cache.update({name: sys.modules.pop(name) for name in list(sys.modules) if _is_package_entry(name)})
        sys.modules.update(theirs)


def p3mnet(backbone: str | None = None, weights: str | Path | None = None, device: str = "cpu") -> Any:
    """P3M-Net in eval mode, fp32: ``net(x)`` returns the official 6-tuple as a named tuple.

    Args:
        backbone: ``resnet34``, ``swin`` or ``vitae``. With ``weights`` it defaults to the checkpoint's
            (a different one is an error); without, to ``resnet34``.
        weights: A checkpoint (ours or the authors'); None builds the network with random weights.
        device: Where the network goes (``cpu``, ``cuda``, ``cuda:1``...).
    """
    with project_modules():
        from src.models import P3MNet, load_model

        if weights is None:
            net = P3MNet(backbone or "resnet34").float().eval()
        else:
            net = load_model(Path(weights).expanduser(), backbone=backbone or "auto")
    return net.to(device)


class _IsolatedPredictor:
    """The project's :class:`~src.inference.predictor.MattePredictor`, called with our modules swapped in."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)

    def __call__(self, image: Any, strategy: str | None = None) -> Any:
        with project_modules():
            return self.predictor(image, strategy=strategy)


def p3mnet_predictor(
    weights: str | Path,
    backbone: str | None = None,
    strategy: str = "hybrid",
    resize_mode: str = "paper",
    device: str = "auto",
    max_short_side: int | None = 1080,
) -> Any:
    """A predictor: ``predictor(image)`` -> ``(H, W)`` float32 matte in [0, 1].

    Args:
        weights: A checkpoint (ours or the authors').
        backbone: Insist on a backbone; None takes the checkpoint's.
        strategy: ``hybrid`` (the papers' test-time strategy), ``resize`` or ``full``.
        resize_mode: ``paper`` (the official resizing, bit for bit) or ``fast``.
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda``...
        max_short_side: Larger photos are predicted at this short side and the matte resized back.
    """
    with project_modules():
        from src.inference.predictor import MattePredictor
        from src.models import load_model

        net = load_model(Path(weights).expanduser(), backbone=backbone or "auto")
        predictor = MattePredictor(net, strategy, resize_mode, device, max_short_side)  # type: ignore[arg-type]
    return _IsolatedPredictor(predictor)
