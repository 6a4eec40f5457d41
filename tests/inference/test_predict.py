"""src/predict.py end to end: folders, globs, broken files, EXIF orientation, RGBA cut-outs, Hydra quoting."""

from __future__ import annotations

import errno
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import DictConfig
from PIL import Image

from p3m.data.io import read_image
from p3m.tasks.predict import run_prediction
from p3m.utils.errors import UserError
from tests.cli import run_python
from tests.conftest import REPO_ROOT

EXIF_ORIENTATION = 0x0112
ROTATED_90_CW = 6  # the camera was turned: viewers rotate the stored pixels 90 degrees clockwise
FILE_SIZE_LIMIT = 64 * 1024


def _photos(tiny_synthetic: Path, folder: Path) -> Path:
    """Two portraits (JPEG, PNG), a broken JPEG and a phone-style JPEG stored sideways with EXIF."""
    folder.mkdir(parents=True)
    images = sorted((tiny_synthetic / "validation" / "P3M-500-NP" / "original_image").iterdir())
    shutil.copy(images[0], folder / "portrait.jpg")
    cv2.imwrite(str(folder / "second.png"), cv2.imread(str(images[1])))
    (folder / "broken.jpg").write_bytes(images[0].read_bytes()[:200])  # cut short
    stored = np.array(Image.open(images[0]).convert("RGB").transpose(Image.Transpose.ROTATE_90))  # 64x96
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATED_90_CW
    Image.fromarray(stored).save(folder / "phone.jpg", exif=exif, quality=100, subsampling=0)
    (folder / "notes.txt").write_text("not an image")
    return folder


def _predict(compose_config: Callable[..., DictConfig], checkpoint: Path, spec: str, out: Path):
    overrides = [
        f"ckpt_path={checkpoint}",
        f"input={spec}",
        f"output={out}",
        "test_strategy=resize",
        "device=cpu",
    ]
    return run_prediction(compose_config("predict", overrides))


def test_folder_prediction_writes_mattes_and_cutouts_and_skips_broken_files(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    photos = _photos(tiny_synthetic, tmp_path / "photos")
    out = tmp_path / "out"
    summary = _predict(compose_config, tiny_checkpoint, str(photos), out)

    assert sorted(p.name for p in summary.written) == ["phone.jpg", "portrait.jpg", "second.png"]
    assert [(p.name, "truncated JPEG" in reason) for p, reason in summary.failed] == [("broken.jpg", True)]
    for sub in ("alpha", "rgba"):
        assert sorted(p.name for p in (out / sub).iterdir()) == ["phone.png", "portrait.png", "second.png"]

    # the cut-out is the photo (RGB, unchanged) with the 8-bit matte as its alpha channel
    photo = cv2.imread(str(photos / "second.png"), cv2.IMREAD_COLOR)
    matte = cv2.imread(str(out / "alpha" / "second.png"), cv2.IMREAD_UNCHANGED)
    rgba = cv2.imread(str(out / "rgba" / "second.png"), cv2.IMREAD_UNCHANGED)
    assert matte.dtype == np.uint8 and matte.shape == photo.shape[:2]
    assert rgba.shape == (*photo.shape[:2], 4)
    np.testing.assert_array_equal(rgba[:, :, :3], photo)
    np.testing.assert_array_equal(rgba[:, :, 3], matte)
    assert 0 < matte.mean() < 255  # a real, not blank, matte

    # EXIF orientation is applied: the outputs are upright (96x64), not as stored (64x96)
    upright = cv2.imread(str(out / "alpha" / "phone.png"), cv2.IMREAD_UNCHANGED)
    assert upright.shape == (96, 64)
    rgba_phone = cv2.imread(str(out / "rgba" / "phone.png"), cv2.IMREAD_UNCHANGED)
    portrait = cv2.imread(str(photos / "portrait.jpg"), cv2.IMREAD_COLOR)
    error = np.abs(rgba_phone[:, :, :3].astype(int) - portrait).mean()  # the same picture, re-encoded
    assert error < 3 and error < np.abs(rgba_phone[::-1, ::-1, :3].astype(int) - portrait).mean() / 5


def test_glob_and_single_file_inputs(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    photos = _photos(tiny_synthetic, tmp_path / "photos")
    summary = _predict(compose_config, tiny_checkpoint, f"{photos}/*.png", tmp_path / "by_glob")
    assert [p.name for p in summary.written] == ["second.png"] and not summary.failed
    summary = _predict(compose_config, tiny_checkpoint, str(photos / "phone.jpg"), tmp_path / "one")
    assert [p.name for p in summary.written] == ["phone.jpg"]
    assert (tmp_path / "one" / "alpha" / "phone.png").is_file()


def test_clashing_names_and_bad_arguments_are_reported(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    photos = _photos(tiny_synthetic, tmp_path / "photos")
    shutil.copy(photos / "second.png", photos / "portrait.png")  # portrait.jpg and portrait.png
    summary = _predict(compose_config, tiny_checkpoint, str(photos), tmp_path / "out")
    assert any(p.name == "portrait.png" and "clashes" in reason for p, reason in summary.failed)
    with pytest.raises(UserError, match="no file, folder or glob pattern"):
        _predict(compose_config, tiny_checkpoint, str(tmp_path / "nothing*.jpg"), tmp_path / "out")
    with pytest.raises(ValueError, match="set input, output"):
        run_prediction(compose_config("predict", [f"ckpt_path={tiny_checkpoint}"]))


@pytest.mark.slow
def test_cli_quotes_awkward_paths_and_exits_1_on_failed_reads_and_writes(
    tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    photos = _photos(tiny_synthetic, tmp_path / "my photos, [2024]")  # space, comma, brackets
    # its 8-bit matte (40 kB raw) can be written, its noisy RGBA cut-out (160 kB raw) cannot
    cv2.imwrite(str(photos / "big.png"), np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8))
    out = tmp_path / "out dir"
    result = run_python(
        [
            sys.executable,
            "src/predict.py",
            f"ckpt_path={tiny_checkpoint}",
            f"input='{photos}'",  # Hydra's quoted string: what the README tells users to write
            f"output='{out}'",
            "test_strategy=hybrid",
            f"hydra.run.dir='{tmp_path / 'log'}'",
        ],
        cwd=REPO_ROOT,
        env=os.environ | {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"},
        timeout=300,
        file_size_limit=FILE_SIZE_LIMIT,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 1, log[-3000:]  # one broken file, one failed write: some inputs failed
    assert "wrote 3 mattes" in log and "broken.jpg" in log
    reason = f"[Errno {errno.EFBIG}] could not write {out / 'rgba' / 'big.png'}: File too large"
    assert f"failed: {photos / 'big.png'} ({reason})" in log
    assert sorted(p.name for p in (out / "rgba").iterdir()) == ["phone.png", "portrait.png", "second.png"]
    for cutout in (out / "rgba").iterdir():
        read_image(cutout)  # whole files; no truncated or temporary file is left
