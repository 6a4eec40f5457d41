"""torch.hub: hubconf.py loads the network and a predictor from a checkout, even beside a user's `src`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import REPO_ROOT


def hub_load(entry: str, **kwargs: object) -> object:
    """``torch.hub.load`` of this checkout, as a user would call it."""
    return torch.hub.load(str(REPO_ROOT), entry, source="local", **kwargs)


SAMPLE = Path("validation/P3M-500-NP/original_image/p_07141906.jpg")


@pytest.fixture(scope="module")
def r34_official_file(
    tmp_path_factory: pytest.TempPathFactory, official_weights: Callable[..., dict[str, torch.Tensor]]
) -> Path:
    """Stand-in weights in the authors' ResNet-34 file layout (``{'state_dict': ...}``)."""
    path = tmp_path_factory.mktemp("hub") / "p3mnet_pretrained_on_p3m10k.pth"
    torch.save({"state_dict": official_weights("r34", seed=5)}, path)
    return path


@pytest.fixture
def small_portrait(samples_dir: Path) -> np.ndarray:
    image = cv2.cvtColor(cv2.imread(str(samples_dir / SAMPLE)), cv2.COLOR_BGR2RGB)
    return cv2.resize(image, (160, 128), interpolation=cv2.INTER_AREA)


def test_p3mnet_loads_the_authors_file_and_matches_our_loader(r34_official_file: Path) -> None:
    from p3m.models import load_model

    net = hub_load("p3mnet", weights=str(r34_official_file))
    assert not net.training
    reference = load_model(r34_official_file)
    for (name, ours), theirs in zip(net.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name
    with pytest.raises(ValueError, match="resnet34 P3M-Net, not swin"):
        hub_load("p3mnet", backbone="swin", weights=str(r34_official_file))


def test_p3mnet_without_weights_builds_the_backbone_asked_for() -> None:
    net = hub_load("p3mnet", backbone="resnet34", weights=None)
    assert type(net).__name__ == "P3MNet" and type(net.backbone).__name__.startswith("ResNet")
    out = net(torch.rand(1, 3, 64, 64))
    assert out.fusion_alpha.shape == (1, 1, 64, 64)


def test_predictor_gives_the_hybrid_matte_of_predict(
    r34_official_file: Path, small_portrait: np.ndarray, tmp_path: Path
) -> None:
    from p3m.models import load_model
    from p3m.models.test_time import infer_alpha

    predictor = hub_load("p3mnet_predictor", weights=str(r34_official_file), device="cpu")
    alpha = predictor(small_portrait)
    assert alpha.shape == small_portrait.shape[:2] and alpha.dtype == np.float32
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    expected = infer_alpha(load_model(r34_official_file), torch.from_numpy(small_portrait).permute(2, 0, 1))
    np.testing.assert_array_equal(alpha, expected.alpha.numpy())
    # a path gives the same matte as the array it holds (PNG is lossless)
    path = tmp_path / "portrait.png"
    cv2.imwrite(str(path), cv2.cvtColor(small_portrait, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(predictor(path), alpha)
    assert not np.array_equal(predictor(small_portrait, strategy="resize"), alpha)


def test_a_users_own_src_package_stays_theirs(r34_official_file: Path, tmp_path: Path) -> None:
    """In a process where an unrelated package named `src` is importable (as in many projects),
    loading through torch.hub neither uses nor replaces it, and leaves sys.path as it was."""
    theirs = tmp_path / "their_project"
    (theirs / "src").mkdir(parents=True)
    (theirs / "src" / "__init__.py").write_text("OWNER = 'the user'\n")
    script = f"""
import sys, torch
path_before = list(sys.path)
net = torch.hub.load({str(REPO_ROOT)!r}, "p3mnet", source="local", weights={str(r34_official_file)!r})
import p3m, src
assert src.OWNER == "the user", src.__file__
assert p3m.__file__.startswith({str(REPO_ROOT / "src" / "p3m")!r}), p3m.__file__
assert type(net).__module__ == "p3m.models.components.p3mnet"
assert sys.path == path_before, set(sys.path) ^ set(path_before)
print("ok", net(torch.rand(1, 3, 64, 64)).fusion_alpha.shape)
"""
    env = {**os.environ, "PYTHONPATH": str(theirs)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=theirs, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ok torch.Size([1, 1, 64, 64])" in done.stdout


def test_the_predictor_takes_a_pil_image(r34_official_file: Path, small_portrait: np.ndarray) -> None:
    predictor = hub_load("p3mnet_predictor", weights=str(r34_official_file), strategy="resize")
    np.testing.assert_array_equal(predictor(Image.fromarray(small_portrait)), predictor(small_portrait))


def test_bad_input_names_what_is_expected(r34_official_file: Path) -> None:
    predictor = hub_load("p3mnet_predictor", weights=str(r34_official_file))
    with pytest.raises(TypeError, match="uint8"):
        predictor(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor(np.zeros((64, 64, 5), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"does not exist .*Data and weights"):
        hub_load("p3mnet", weights="/nonexistent/p3mnet.pth")
