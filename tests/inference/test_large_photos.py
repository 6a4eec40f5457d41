"""Large photos in bounded memory: banded mattes bit for bit; reduced JPEG decoding where it is shrunk."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from p3m.data.io import read_image, read_image_reduced
from p3m.inference import matting
from p3m.inference.matting import MattingSettings, composite, matte_uint8, predict_matte, predict_matte_uint8
from p3m.inference.predict_files import predict_files
from p3m.models import P3MNet
from p3m.models.test_time import STRATEGIES
from tests.fixtures import SAMPLES_DIR


@pytest.fixture(scope="module")
def net() -> P3MNet:
    torch.manual_seed(0)
    return P3MNet("resnet34").eval()


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    """A real portrait at 300x220: big enough for every strategy at max_short_side=128, small and fast."""
    image = read_image(next((SAMPLES_DIR / "train" / "blurred_image").glob("*.jpg")))
    return cv2.resize(image, (220, 300), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("resize_mode", ["paper", "fast"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_banded_8_bit_matte_is_the_whole_one_bit_for_bit(
    net: P3MNet, portrait: np.ndarray, strategy: str, resize_mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = MattingSettings(strategy, resize_mode, max_short_side=128)  # mattes resized up from the passes
    whole = matte_uint8(predict_matte(net, portrait, settings))
    monkeypatch.setattr(matting, "BAND_PIXELS", 220 * 7)  # bands of 7 rows: 43 of them
    np.testing.assert_array_equal(predict_matte_uint8(net, portrait, settings), whole)


def _write_jpeg(path: Path, rgb: np.ndarray, orientation: int | None = None) -> Path:
    image = Image.fromarray(rgb)
    exif = image.getexif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(path, quality=92, exif=exif)
    return path


def test_photos_read_whole_give_the_files_they_gave_before(
    net: P3MNet, portrait: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under twice max_short_side (no JPEG reduction) and non-JPEG files: the same outputs as before."""
    photos = tmp_path / "photos"
    photos.mkdir()
    jpeg = _write_jpeg(photos / "a.jpg", portrait)  # 300x220 at max_short_side 128: shrunk, read whole
    assert cv2.imwrite(str(photos / "b.png"), cv2.resize(portrait, (660, 900))[:, :, ::-1])  # 5x, not a JPEG
    settings = MattingSettings("hybrid", "paper", max_short_side=128)
    monkeypatch.setattr(matting, "BAND_PIXELS", 10_000)
    summary = predict_files(net, sorted(photos.iterdir()), tmp_path / "out", settings)
    assert len(summary.written) == 2 and not summary.failed
    for path in (jpeg, photos / "b.png"):
        image = read_image(path, exif=True)
        before = matte_uint8(predict_matte(net, image, settings))  # what predict wrote before
        matte = cv2.imread(str(tmp_path / "out" / "alpha" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        rgba = cv2.imread(str(tmp_path / "out" / "rgba" / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(matte, before)
        np.testing.assert_array_equal(rgba, composite(image, before, None)[:, :, [2, 1, 0, 3]])


def test_a_large_jpeg_is_decoded_reduced_for_the_network_and_matted_at_its_size(
    net: P3MNet, portrait: np.ndarray, tmp_path: Path
) -> None:
    big = cv2.resize(portrait, (880, 1200), interpolation=cv2.INTER_CUBIC)  # 4x the size the network needs
    path = _write_jpeg(tmp_path / "big.jpg", big, orientation=6)  # stored sideways: turn it upright
    upright = read_image(path, exif=True)
    reduced, size = read_image_reduced(path, 200, exif=True)
    assert size == upright.shape[:2] == (880, 1200) and reduced.shape[:2] == (220, 300)  # 1/4 in the DCT
    settings = MattingSettings("hybrid", "paper", max_short_side=200)
    image, matte = matting.matte_photo(net, path, settings)
    np.testing.assert_array_equal(image, upright)  # the cut-out's pixels are the whole photo's
    whole = matte_uint8(predict_matte(net, upright, settings))  # the network input from the whole photo
    assert matte.shape == whole.shape
    assert np.abs(matte.astype(int) - whole).mean() < 1.0  # libjpeg's box filter, not cv2's resize
