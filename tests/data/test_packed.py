"""The packed training format (src/p3m/data/packed.py): same samples as the image files, safe to re-run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from p3m.data.datamodule import P3M10kDataModule
from p3m.data.io import read_image, read_mask
from p3m.data.packed import pack_training_set
from p3m.data.synthetic import ensure_synthetic_dataset
from p3m.data.transforms import IJCVTransform, PaperTransform, ResizeTransform, StrongTransform
from tests.data import EVAL_SPLITS, assert_same_samples, make_p3m_tree, write

SMALL = {"crop_sizes": [32, 48], "out_size": 32, "kernel_range": [3, 7]}


def datamodule(root: Path, augmentation: object) -> P3M10kDataModule:
    return P3M10kDataModule(
        root=root,
        augmentation=augmentation,
        eval_splits=EVAL_SPLITS,
        batch_size=2,
        num_workers=0,
        require_fg_bg=True,
    )


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of every file outside train/packed."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and "packed" not in p.relative_to(root).parts
    }


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return make_p3m_tree(tmp_path / "p3m", facemask=True)


@pytest.mark.parametrize(
    "augmentation",
    [PaperTransform(**SMALL), IJCVTransform(**SMALL), ResizeTransform(out_size=32), StrongTransform(**SMALL)],
    ids=["paper", "ijcv", "none", "strong"],
)
def test_packed_samples_are_bit_identical_to_the_image_files(
    tiny_root: Path, tmp_path: Path, augmentation: object
) -> None:
    packed_root = Path(shutil.copytree(tiny_root, tmp_path / "packed"))
    summary = pack_training_set(packed_root, workers=1, progress=False)
    assert len(summary.converted) == 4 and not summary.failed
    images, arrays = datamodule(tiny_root, augmentation), datamodule(packed_root, augmentation)
    images.setup("fit")
    arrays.setup("fit")
    files = arrays.train_set.files[0]
    packed = packed_root / "train" / "packed"
    assert (files.image, files.alpha, files.fg, files.bg, files.facemask) == tuple(
        packed / d / "p_0000.npy" for d in ("blurred_image", "mask", "fg_blurred", "bg", "facemask")
    )
    loaded = arrays.train_set.load(0)
    assert all(isinstance(v, np.memmap) for v in loaded.values())
    assert all(d.is_relative_to(packed) for d in arrays.read_dirs)  # PPT reads packed/blurred_image only
    assert_same_samples(images.train_set, arrays.train_set)


def test_packing_keeps_sources_resumes_and_repairs(tiny_root: Path) -> None:
    before = snapshot(tiny_root)
    first = pack_training_set(tiny_root, workers=1, progress=False)
    assert first.converted == [f"p_{i:04d}" for i in range(4)]
    assert snapshot(tiny_root) == before  # no source touched, nothing written outside train/packed
    packed = tiny_root / "train" / "packed"
    np.testing.assert_array_equal(
        np.load(packed / "blurred_image" / "p_0001.npy"),
        read_image(tiny_root / "train/blurred_image/p_0001.jpg"),
    )
    np.testing.assert_array_equal(
        np.load(packed / "mask" / "p_0001.npy"), read_mask(tiny_root / "train/mask/p_0001.png")
    )
    assert not list(packed.rglob(".*.tmp"))  # no temporary files left

    again = pack_training_set(tiny_root, workers=1, progress=False)
    assert again.skipped == first.converted and not again.converted
    # an interrupted write of another tool, a truncated array: only that stem is packed again
    truncated = packed / "bg" / "p_0002.npy"
    truncated.write_bytes(truncated.read_bytes()[:200])
    (packed / "mask" / "p_0003.npy").unlink()
    repaired = pack_training_set(tiny_root, workers=1, progress=False)
    assert repaired.converted == ["p_0002", "p_0003"]
    assert np.load(truncated).shape == (72, 64, 3)


def test_fg_bg_arrays_already_there_are_not_copied(tiny_root: Path) -> None:
    for folder in ("fg_blurred", "bg"):
        for path in (tiny_root / "train" / folder).iterdir():
            np.save(path.with_suffix(".npy"), read_image(path))
    pack_training_set(tiny_root, workers=1, progress=False)
    assert {p.name for p in (tiny_root / "train" / "packed").iterdir() if p.is_dir()} == {
        "blurred_image",
        "mask",
        "facemask",
    }


def test_a_stem_whose_maps_differ_in_size_fails_alone(tiny_root: Path) -> None:
    write(tiny_root / "train" / "mask" / "p_0001.png", np.zeros((70, 64), np.uint8))
    summary = pack_training_set(tiny_root, workers=1, progress=False)
    assert list(summary.failed) == ["p_0001"] and "p_0001.png is 70x64" in summary.failed["p_0001"]
    assert len(summary.converted) == 3
    assert not list((tiny_root / "train" / "packed").rglob("p_0001.npy"))


def test_a_partly_packed_dataset_reads_the_rest_from_the_files(tiny_root: Path) -> None:
    pack_training_set(tiny_root, workers=1, progress=False)
    os.remove(tiny_root / "train" / "packed" / "blurred_image" / "p_0002.npy")
    dm = datamodule(tiny_root, PaperTransform(**SMALL))
    dm.setup("fit")
    assert dm.train_set.files[2].image == tiny_root / "train" / "blurred_image" / "p_0002.jpg"
    assert tiny_root / "train" / "blurred_image" in dm.read_dirs
    assert dm.train_set[2]["image"].shape == (3, 32, 32)


def test_packing_leaves_a_synthetic_root_complete(tmp_path: Path) -> None:
    size = {"num_train": 2, "num_test": 1, "size": (64, 48), "seed": 0, "num_faces": 0}
    root = ensure_synthetic_dataset(tmp_path / "syn", **size)
    summary = pack_training_set(root, workers=1, progress=False)
    assert len(summary.converted) == 2
    generated = sorted((root / "train" / "blurred_image").iterdir())
    before = [path.stat().st_mtime_ns for path in generated]
    assert ensure_synthetic_dataset(root, **size) == root
    assert [path.stat().st_mtime_ns for path in generated] == before  # complete: nothing regenerated
    assert len(list((root / "train" / "packed" / "blurred_image").iterdir())) == 2  # kept, not regenerated


def test_prepare_pack_true_entry_point(tiny_root: Path) -> None:
    """`python src/prepare.py data.root=... pack=true`: fg/bg already there, so only packing happens."""
    from hydra import compose, initialize_config_dir

    from p3m.tasks.prepare import run

    conf = Path(__file__).resolve().parents[2] / "conf"
    base = [f"data.root={tiny_root}", "workers=1", "progress=false"]
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        assert compose("prepare", overrides=base).pack is False
        assert run(compose("prepare", overrides=[*base, "pack=true"])) == 0
        assert len(list((tiny_root / "train" / "packed" / "mask").glob("*.npy"))) == 4
        write(tiny_root / "train" / "facemask" / "p_0003.png", np.zeros((70, 64), np.uint8))
        (tiny_root / "train" / "packed" / "facemask" / "p_0003.npy").unlink()
        assert run(compose("prepare", overrides=[*base, "pack=true"])) == 1  # one stem failed, listed
