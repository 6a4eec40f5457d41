"""data=folder: a folder of photos and one of mattes or masks becomes a checked, split, derived dataset."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from p3m.data.band_dataset import BandLabelDataset
from p3m.data.folder import FolderDataModule
from p3m.data.folder_derived import MANIFEST_NAME
from p3m.data.layout import DatasetLayoutError
from p3m.data.transforms import PaperTransform
from p3m.privacy.anonymizer import Anonymizer
from p3m.privacy.modes import PPT, NoPrivacy
from p3m.utils.errors import UserError
from tests.folder_data import TEST_DETECTOR, make_folder

SIZE = (96, 64)


def module(images: Path, mattes: Path, cache: Path, **overrides: Any) -> FolderDataModule:
    settings: dict[str, Any] = {
        "images": images,
        "mattes": mattes,
        "cache_dir": cache,
        "privacy": NoPrivacy(),
        "augmentation": PaperTransform(crop_sizes=[48], out_size=32, transition_prob=1.0),
        "batch_size": 2,
        "num_workers": 0,
        "require_fg_bg": False,
        "prepare_workers": 1,
    }
    return FolderDataModule(**(settings | overrides))


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path]:
    return make_folder(tmp_path)


def test_pairs_are_split_and_trained_from_the_derived_folder(
    folder: tuple[Path, Path], tmp_path: Path
) -> None:
    before = [_digest(f) for f in folder]
    dm = module(*folder, tmp_path / "cache")
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 5 and not isinstance(dm.train_set, BandLabelDataset)
    assert [s.name for s in dm.eval_splits] == ["held-out"] and dm.eval_splits[0].trimap_dir is not None
    assert all(str(d).startswith(str(dm.root)) for d in dm.read_dirs)
    item = next(iter(dm.train_dataloader()))
    assert item["image"].shape == (2, 3, 32, 32) and "alpha_known" not in item
    dm.setup("validate")
    held = dm.eval_sets[0][0]
    assert held["trimap"].shape == held["alpha"].shape and held["stem"] not in {
        f.stem for f in dm.train_set.files
    }
    assert [_digest(f) for f in folder] == before  # the user's files are only read
    # the same folders and seed give the same split; a list of stems chooses it
    again = module(*folder, tmp_path / "cache")
    again.setup("fit")
    assert [f.stem for f in again.train_set.files] == [f.stem for f in dm.train_set.files]
    chosen = module(*folder, tmp_path / "cache", val_stems=["p0", "p1"])
    chosen.setup("fit")
    assert [f.stem for f in chosen.train_set.files] == ["p2", "p3", "p4", "p5"]
    assert not (chosen.root / "train" / "mask" / "p0.png").exists()  # moved to the held-out part


def test_bad_pairs_are_reported_together_before_training(folder: tuple[Path, Path], tmp_path: Path) -> None:
    images, mattes = folder
    (mattes / "p1.png").unlink()  # an image without a matte
    cv2.imwrite(str(mattes / "extra.png"), np.zeros(SIZE, np.uint8))  # a matte without an image
    cv2.imwrite(str(mattes / "p2.png"), np.zeros((SIZE[0] // 2, SIZE[1]), np.uint8))  # another size
    data = (images / "p3.jpg").read_bytes()
    (images / "p3.jpg").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(DatasetLayoutError) as error:
        module(images, mattes, tmp_path / "cache").prepare_data()
    message = str(error.value)
    assert message.startswith("4 file(s)")
    for name in ("images/p1.jpg", "mattes/extra.png", "mattes/p2.png", "images/p3.jpg"):
        assert name in message, name
    assert not list((tmp_path / "cache").glob("*/train/mask/*.png"))  # nothing was derived for training
    dm = module(images, mattes, tmp_path / "cache", skip_bad_pairs=True)
    dm.setup("fit")
    dm.setup("validate")
    assert len(dm.train_set) + len(dm.eval_sets[0]) == 3  # p0, p4, p5


def test_binary_masks_are_detected_and_train_in_binary_label_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = make_folder(tmp_path, binary=True)
    with caplog.at_level(logging.INFO, logger="p3m.data.folder_derived"):
        dm = module(*folder, tmp_path / "cache")
        dm.setup("fit")
    assert "6 binary mask(s), 0 soft matte(s)" in caplog.text and "binary-label mode" in caplog.text
    assert isinstance(dm.train_set, BandLabelDataset)
    assert dm.eval_splits[0].trimap_dir is None  # no trimap metrics against binary masks
    torch.manual_seed(0)
    item = dm.train_set[0]
    known, trimap = item["alpha_known"], item["trimap"]
    assert 0 < known.mean() < 1 and (known[trimap == 128] == 0).all() and (known[trimap == 0] == 1).all()
    # the band comes from the mask with the scaled kernel: 61 px at 1080 -> 5 px at a 64 px short side
    assert dm.train_set.band_kernels == (5,) * 5
    # but the trimaps are never narrower than a soft sample's (the augmentation's kernel_range)
    low, high = dm.train_set.inner.transform.kernel_range
    assert high > 5 and dm.train_set.pipeline(5).kernel_range == (max(low, 5), high)
    assert dm.train_set.pipeline(61).kernel_range == (61, 61)
    naive = module(*folder, tmp_path / "cache", labels="soft")
    naive.setup("fit")
    assert not isinstance(naive.train_set, BandLabelDataset)


def test_zero_one_masks_become_0_255_labels(tmp_path: Path) -> None:
    images, mattes = make_folder(tmp_path, binary=True)
    for path in mattes.iterdir():
        cv2.imwrite(str(path), cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) // 255)
    dm = module(images, mattes, tmp_path / "cache")
    dm.setup("fit")
    label = cv2.imread(
        str(dm.root / "train" / "mask" / f"{dm.train_set.files[0].stem}.png"), cv2.IMREAD_GRAYSCALE
    )
    assert set(np.unique(label)) == {0, 255}


def test_a_batch_larger_than_the_training_part_is_reduced(
    folder: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dm = module(*folder, tmp_path / "cache", batch_size=8)
    with caplog.at_level(logging.WARNING, logger="p3m.data.folder"):
        dm.setup("fit")
    assert "data.batch_size=8 is larger than the 5 training image(s)" in caplog.text
    assert next(iter(dm.train_dataloader()))["image"].shape[0] == 5


def test_derived_files_follow_the_user_folders(folder: tuple[Path, Path], tmp_path: Path) -> None:
    images, mattes = folder
    dm = module(images, mattes, tmp_path / "cache", val_stems=["p0"])
    dm.setup("fit")
    label = dm.root / "train" / "mask" / "p1.png"
    corrected = np.repeat(np.linspace(0, 255, SIZE[1]).astype(np.uint8)[None], SIZE[0], axis=0)
    cv2.imwrite(str(mattes / "p1.png"), corrected)  # a corrected matte
    (images / "p2.jpg").unlink()
    (mattes / "p2.png").unlink()  # a removed pair
    dm = module(images, mattes, tmp_path / "cache", val_stems=["p0"])
    dm.setup("fit")
    np.testing.assert_array_equal(cv2.imread(str(label), cv2.IMREAD_GRAYSCALE), corrected)
    assert not list((dm.root / "train").glob("*/p2.*"))
    assert sorted(f.stem for f in dm.train_set.files) == ["p1", "p3", "p4", "p5"]


def test_a_cache_folder_with_foreign_files_is_refused(folder: tuple[Path, Path], tmp_path: Path) -> None:
    dm = module(*folder, tmp_path / "cache")
    dm.root.mkdir(parents=True)
    (dm.root / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="not made by data=folder"):
        dm.prepare_data()
    assert (dm.root / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"images": None}, "needs data.images=DIR"),
        ({"images": "/nonexistent"}, "data.images=/nonexistent: no such folder"),
        ({"labels": "maybe"}, "data.labels='maybe'"),
        ({"val_fraction": 1.0}, "data.val_fraction=1.0"),
        ({"val_stems": ["nope"]}, "no pair in data.images: nope"),
    ],
)
def test_settings_are_checked(folder: tuple[Path, Path], tmp_path: Path, overrides: dict, match: str) -> None:
    images = overrides.pop("images", folder[0])
    with pytest.raises(UserError, match=match):
        module(images, folder[1], tmp_path / "cache", **overrides).prepare_data()


def test_ppt_trains_on_anonymised_copies_only(folder: tuple[Path, Path], tmp_path: Path) -> None:
    anonymizer = Anonymizer(detector=TEST_DETECTOR)
    dm = module(*folder, tmp_path / "cache", privacy=PPT(), anonymizer=anonymizer)
    dm.setup("fit")
    assert {d.name for d in dm.read_dirs} == {"blurred_image", "mask", "facemask"}
    assert not (dm.root / "train" / "original_image").exists()
    stem = dm.train_set.files[0].stem
    blurred = cv2.imread(str(dm.root / "train" / "blurred_image" / f"{stem}.png"))
    original = cv2.imread(str(folder[0] / f"{stem}.jpg"))
    facemask = cv2.imread(str(dm.root / "train" / "facemask" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    assert facemask.any() and not np.array_equal(blurred[facemask > 0], original[facemask > 0])
    assert "facemask" in next(iter(dm.train_dataloader()))


def test_pseudo_labels_fill_the_band_once(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, binary=True)
    weights = tmp_path / "start.ckpt"
    weights.write_bytes(b"stand-in: the labeler below does not read it")
    calls: list[int] = []

    def labeler(path: str) -> Callable[[np.ndarray], np.ndarray]:
        calls.append(1)
        return lambda image: np.full(image.shape[:2], 0.5, np.float32)

    dm = module(
        *folder, tmp_path / "cache", band_labels="pseudo", init_from=str(weights), pseudo_labeler=labeler
    )
    dm.setup("fit")
    label = cv2.imread(
        str(dm.root / "train" / "mask" / f"{dm.train_set.files[0].stem}.png"), cv2.IMREAD_GRAYSCALE
    )
    assert set(np.unique(label)) == {0, 128, 255}
    assert "alpha_known" not in dm.train_set[0]
    again = module(
        *folder, tmp_path / "cache", band_labels="pseudo", init_from=str(weights), pseudo_labeler=labeler
    )
    again.setup("fit")
    assert len(calls) == 1  # kept: made once per starting network
    with pytest.raises(UserError, match=r"model\.init_from"):
        module(*folder, tmp_path / "other", band_labels="pseudo", pseudo_labeler=labeler).prepare_data()
    # the default, auto: pseudo-labels when fine-tuning from a starting network, no band supervision without
    auto = module(*folder, tmp_path / "cache", init_from=str(weights), pseudo_labeler=labeler)
    assert auto.hparams.band_labels == "pseudo" and auto.hparams_initial.band_labels == "auto"
    assert module(*folder, tmp_path / "other", pseudo_labeler=labeler).hparams.band_labels == "ignore"


def test_the_checkpoint_hyperparameters_are_plain(folder: tuple[Path, Path], tmp_path: Path) -> None:
    dm = module(*folder, tmp_path / "cache", anonymizer=Anonymizer(), pseudo_labeler=lambda path: None)
    for values in (dm.hparams, dm.hparams_initial):
        assert "anonymizer" not in values and "pseudo_labeler" not in values
        assert all(
            isinstance(v, str | int | float | bool | list | tuple | dict | type(None))
            for v in values.values()
        )


def test_evaluation_derives_only_the_held_out_part(folder: tuple[Path, Path], tmp_path: Path) -> None:
    dm = module(*folder, tmp_path / "cache")
    dm.setup("test")
    assert len(dm.eval_sets[0]) == 1 and not (dm.root / "train").exists()
    assert (dm.root / MANIFEST_NAME).is_file()
