"""Build the authors' ResNet-34 P3M-Net from a checkout of their repository, at run time, for benchmarks.

Nothing of the official code is copied here: its modules are imported from the checkout
(``git clone https://github.com/JizhiziLi/P3M``; the benches look in ``--official`` or
``$P3M_OFFICIAL_REPO``, default ``../official/P3M`` beside this repository). Without a checkout the
callers skip their official rows.

The official ``resnet34_mp()`` always loads an ImageNet file named in its ``config.py``; the builder
points it at a randomly initialised ResNet state dict of the right shape instead, and the caller
loads whatever weights it compares (:func:`matched_pair` gives both models the same ones).
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OFFICIAL = Path(os.environ.get("P3M_OFFICIAL_REPO", REPO.parent / "official" / "P3M"))


def official_core(repo: Path | None = None) -> Path | None:
    """The ``core/`` folder of an official checkout, or None when there is none at ``repo``."""
    core = Path(repo or DEFAULT_OFFICIAL) / "core"
    return core if (core / "network" / "P3mNet.py").is_file() else None


def build_official_p3mnet(repo: Path | None = None) -> nn.Module | None:
    """The official ``P3mNet()`` (ResNet-34) with random weights, or None without a checkout."""
    core = official_core(repo)
    if core is None:
        return None
    if str(core) not in sys.path:
        sys.path.insert(0, str(core))  # the official modules import each other as top-level modules
    resnet_mp = importlib.import_module("network.resnet_mp")
    with tempfile.TemporaryDirectory(prefix="p3m_official_") as tmp:
        stand_in = Path(tmp) / "r34mp_random.pth"
        torch.save(resnet_mp.ResNet(resnet_mp.BasicBlock, [3, 4, 6, 3]).state_dict(), stand_in)
        resnet_mp.PRETRAINED_R34_MP = str(stand_in)  # read by resnet34_mp() when P3mNet() is built
        return importlib.import_module("network.P3mNet").P3mNet()


def matched_pair(repo: Path | None = None) -> tuple[nn.Module, nn.Module] | None:
    """(official model, our P3MNet) holding the same weights, through our checkpoint converter."""
    from p3m.models import P3MNet
    from p3m.models.official_format import convert_official_state_dict

    official = build_official_p3mnet(repo)
    if official is None:
        return None
    ours = P3MNet("resnet34")
    ours.load_state_dict(convert_official_state_dict(official.state_dict(), arch="r34"))
    return official, ours
