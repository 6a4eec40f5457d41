"""Derived files know their sources (src/p3m/data/provenance.py): training never reads stale prepared data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from p3m.data.datamodule import P3M10kDataModule
from p3m.data.fgbg import prepare_fg_bg
from p3m.data.io import read_image, read_mask
from p3m.data.layout import P3M10kLayout
from p3m.data.packed import pack_training_set
from p3m.data.synthetic import ensure_synthetic_dataset
from p3m.data.transforms import ResizeTransform
from p3m.utils.errors import UserError
from tests.data import EVAL_SPLITS, make_p3m_tree, write

SMALL = {"num_train": 2, "num_test": 1, "size": (64, 48), "num_faces": 0}


def later(path: Path, seconds: int = 2) -> None:
    """Date ``path`` as if it changed after prepare ran (file times can be coarser than a test is fast)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 10**9))


def train_split(root: Path) -> dict[str, object]:
    return {f.stem: f for f in P3M10kLayout(root).train_split(require_fg_bg=True).files}


def test_regenerating_the_synthetic_set_never_leaves_training_on_the_old_fg_arrays(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "syn", seed=0, **SMALL)
    converted = prepare_fg_bg(root, workers=1, progress=False, fg_bg_format="npy")
    assert len(converted.converted) == 2  # the generator's fg/bg PNGs as arrays
    ensure_synthetic_dataset(root, seed=1, **SMALL)  # new pictures, same file names
    data = P3M10kDataModule(
        root=root,
        augmentation=ResizeTransform(out_size=32),
        eval_splits=EVAL_SPLITS,
        batch_size=2,
        num_workers=0,
        require_fg_bg=True,
    )
    data.setup("fit")
    files = data.train_set.files[0]
    fresh_fg = read_image(root / "train" / "fg_blurred" / "syn_train_0000.png")
    np.testing.assert_array_equal(data.train_set.load(0)["fg"], fresh_fg)  # not the seed-0 array
    assert files.fg.suffix == ".png" and not list((root / "train").rglob("*.npy"))  # the stale arrays went


def test_a_corrected_mask_is_never_hidden_by_its_packed_array(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path / "p3m")
    pack_training_set(root, workers=1, progress=False)
    mask = root / "train" / "mask" / "p_0001.png"
    corrected = 255 - read_mask(mask)
    write(mask, corrected)
    later(mask)
    packed = root / "train" / "packed" / "mask" / "p_0001.npy"
    with pytest.raises(UserError) as refused:
        train_split(root)
    message = str(refused.value)
    assert f"{packed} was made from {mask}, which changed since" in message
    assert f"`p3m prepare data.root={root} pack=true`" in message
    # the command it names packs that array again, and only it
    again = pack_training_set(root, workers=1, progress=False)
    assert again.converted == ["p_0001"] and len(again.skipped) == 3
    files = train_split(root)
    np.testing.assert_array_equal(np.load(files["p_0001"].alpha), corrected)


def test_a_copy_with_new_file_times_is_re_recorded_not_repacked(tmp_path: Path) -> None:
    original = make_p3m_tree(tmp_path / "p3m")
    pack_training_set(original, workers=1, progress=False)
    copy = Path(shutil.copytree(original, tmp_path / "copy", copy_function=shutil.copy))  # new times
    for path in (copy / "train" / "blurred_image").iterdir():
        later(path)
    with pytest.raises(UserError, match=r"packed/blurred_image/p_0000\.npy was made from"):
        train_split(copy)
    again = pack_training_set(copy, workers=1, progress=False)
    assert len(again.skipped) == 4 and not again.converted  # same bytes: only the record is updated
    assert len(train_split(copy)) == 4


def test_arrays_without_a_record_must_be_newer_than_their_sources(tmp_path: Path) -> None:
    """Arrays from before records (or from a run stopped before saving one): the make rule."""
    from p3m.data.provenance import RECORD_SUFFIX

    root = make_p3m_tree(tmp_path / "p3m", num_train=2)
    pack_training_set(root, workers=1, progress=False)
    for record in (root / "train" / "packed").glob(f".*{RECORD_SUFFIX}"):
        record.unlink()
    assert len(train_split(root)) == 2  # newer than their sources: read
    later(root / "train" / "blurred_image" / "p_0000.jpg")
    with pytest.raises(UserError, match=r"packed/blurred_image/p_0000\.npy was made from .*p_0000\.jpg"):
        train_split(root)
    again = pack_training_set(root, workers=1, progress=False)
    assert again.converted == ["p_0000"] and again.skipped == ["p_0001"]  # the other one is adopted
    assert len(train_split(root)) == 2
