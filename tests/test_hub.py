"""torch.hub: hubconf.py loads the network and a predictor from a checkout, even beside a user's `src`."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

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


@pytest.fixture
def user_src() -> Iterator[types.ModuleType]:
    """A caller's own, unrelated `src` (and `src.models`) already imported, as in many projects."""
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "src" or k.startswith("src.")}
    theirs = types.ModuleType("src")
    theirs.__path__ = []  # a package
    theirs.marker = "the user's"
    models = types.ModuleType("src.models")
    sys.modules |= {"src": theirs, "src.models": models}
    yield theirs
    for k in [k for k in sys.modules if k == "src" or k.startswith("src.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def test_p3mnet_loads_the_authors_file_and_matches_our_loader(r34_official_file: Path) -> None:
    from src.models import load_model

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
    from src.models import load_model
    from src.models.test_time import infer_alpha

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


def test_a_users_own_src_is_neither_used_nor_replaced(
    r34_official_file: Path, small_portrait: np.ndarray, user_src: types.ModuleType
) -> None:
    net = hub_load("p3mnet", weights=str(r34_official_file))
    predictor = hub_load("p3mnet_predictor", weights=str(r34_official_file))
    assert type(net).__module__ == "src.models.components.p3mnet"
    assert Path(type(net).forward.__code__.co_filename).is_relative_to(REPO_ROOT / "src")
    # the caller's modules are back, untouched, and none of ours is left under their names
    assert sys.modules["src"] is user_src and user_src.marker == "the user's"
    assert not hasattr(sys.modules["src.models"], "load_model")
    assert sorted(k for k in sys.modules if k.startswith("src")) == ["src", "src.models"]
    alpha = predictor(small_portrait)
    assert alpha.shape == small_portrait.shape[:2]
    assert sys.modules["src"] is user_src


@pytest.fixture
def no_src() -> Iterator[None]:
    """No `src` imported at all (a fresh interpreter that has not imported this project)."""
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k == "src" or k.startswith("src.")}
    yield
    for k in [k for k in sys.modules if k == "src" or k.startswith("src.")]:
        del sys.modules[k]
    sys.modules.update(saved)


def test_loading_leaves_no_src_behind(r34_official_file: Path, no_src: None) -> None:
    net = hub_load("p3mnet", weights=str(r34_official_file))
    assert net(torch.rand(1, 3, 64, 64)).fusion_alpha.shape == (1, 1, 64, 64)
    # a later `import src` of the caller finds their own package, not ours
    assert not [k for k in sys.modules if k == "src" or k.startswith("src.")]


def test_bad_input_names_what_is_expected(r34_official_file: Path) -> None:
    predictor = hub_load("p3mnet_predictor", weights=str(r34_official_file))
    with pytest.raises(TypeError, match="uint8"):
        predictor(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor(np.zeros((64, 64, 5), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"does not exist .*Data and weights"):
        hub_load("p3mnet", weights="/nonexistent/p3mnet.pth")
