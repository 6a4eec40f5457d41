"""Privacy audit of the training data: which files the training dataloader opens, and (obfuscate mode)
that no batch ever holds a face pixel that was not obfuscated.

The synthetic dataset has everything a leak needs: train/original_image and train/fg (the originals'
foregrounds, faces intact) sit next to the blurred images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import p3m.data.io as io
from p3m.data.datamodule import P3M10kDataModule
from p3m.data.io import read_image, read_mask
from p3m.data.layout import DatasetLayoutError
from p3m.data.transforms import PaperTransform
from p3m.privacy.modes import PPT, CopyPaste, Obfuscate, PrivacyMode
from p3m.privacy.obfuscate import obfuscate_face
from p3m.privacy.training import band_kernel_for, face_region

SMALL = {"crop_sizes": [48, 64], "out_size": 64, "kernel_range": [3, 7]}
ORIGINAL_DIRS = {"original_image", "original", "fg"}  # folders with non-anonymized faces


@dataclass
class Spy:
    """A training pipeline that records what goes in and what comes out."""

    inner: Callable[..., dict[str, torch.Tensor]]
    inputs: list[dict[str, np.ndarray]] = field(default_factory=list)
    outputs: list[dict[str, torch.Tensor]] = field(default_factory=list)

    def __call__(self, sample: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        self.inputs.append({k: v.copy() for k, v in sample.items()})
        self.outputs.append(self.inner(sample, rng))
        return self.outputs[-1]


def datamodule(root: Path, privacy: PrivacyMode, augmentation: Any = None) -> P3M10kDataModule:
    dm = P3M10kDataModule(
        root=root,
        augmentation=augmentation or PaperTransform(**SMALL),
        privacy=privacy,
        batch_size=2,
        num_workers=0,
        require_fg_bg=True,
        seed=0,
    )
    dm.setup("fit")
    return dm


def opened_files(dm: P3M10kDataModule, monkeypatch: pytest.MonkeyPatch, epochs: int = 2) -> set[Path]:
    """Every file the training dataloader reads (all image and mask reads go through io._read_bytes)."""
    opened: set[Path] = set()
    real = io._read_bytes

    def spy(path: Path) -> np.ndarray:
        opened.add(Path(path))
        return real(path)

    monkeypatch.setattr(io, "_read_bytes", spy)
    for _ in range(epochs):
        for _batch in dm.train_dataloader():
            pass
    monkeypatch.setattr(io, "_read_bytes", real)
    return opened


@pytest.mark.parametrize(
    "privacy",
    [
        PPT(),
        CopyPaste(level="image", prob=1.0),
        CopyPaste(level="feature", prob=1.0),
    ],
    ids=["ppt", "icp", "fcp"],
)
def test_ppt_and_cp_open_only_anonymized_images(
    privacy: PrivacyMode, tiny_synthetic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dm = datamodule(tiny_synthetic, privacy)
    train = tiny_synthetic / "train"
    expected = {train / d for d in ("blurred_image", "mask", "fg_blurred", "bg", "facemask")}
    if privacy.name == "cp":
        expected |= {tiny_synthetic / "public_faces/images", tiny_synthetic / "public_faces/masks"}
    assert set(dm.read_dirs) == expected  # the data module records the folders it reads
    opened = opened_files(dm, monkeypatch)
    assert opened and all(path.parent in expected for path in opened), sorted(opened)
    assert not {path.parent.name for path in opened} & ORIGINAL_DIRS
    assert {path.parent for path in opened} >= {train / "blurred_image", train / "mask"}
    if privacy.name == "cp":  # the public faces are read, and nothing else of theirs
        assert any(path.parent == tiny_synthetic / "public_faces/images" for path in opened)


def test_cp_refuses_foregrounds_that_may_show_faces(tmp_path: Path) -> None:
    import shutil

    from p3m.data.synthetic import ensure_synthetic_dataset

    root = ensure_synthetic_dataset(tmp_path / "syn", num_train=2, num_test=1, size=(64, 64), num_faces=1)
    shutil.rmtree(root / "train/fg_blurred")
    with pytest.raises(DatasetLayoutError, match=r"privacy=cp needs foregrounds of the face-blurred"):
        datamodule(root, CopyPaste())
    shutil.rmtree(root / "train/facemask")
    with pytest.raises(DatasetLayoutError, match=r"privacy=obfuscate needs face masks in"):
        datamodule(root, Obfuscate())


@pytest.mark.parametrize("method", ["blur", "mosaic", "zero"])
def test_obfuscate_mode_never_batches_an_unobfuscated_face(
    method: str, tiny_synthetic: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(PaperTransform(**SMALL))
    dm = datamodule(tiny_synthetic, Obfuscate(method=method), spy)
    train = tiny_synthetic / "train"
    # obfuscate reads the originals (and their fg) by design, and records it
    assert {train / "original_image", train / "fg", train / "facemask"} <= set(dm.read_dirs)

    batches = []
    for _ in range(2):
        batches += list(dm.train_dataloader())
    assert len(spy.inputs) == 2 * len(dm.train_set) and len(batches) == len(spy.inputs) // 2

    # 1. every batch is exactly the pipeline's output for the recorded (obfuscated) samples
    for i, batch in enumerate(batches):
        assert set(batch.pop("index").tolist()) <= set(range(len(dm.train_set)))  # added by the dataset
        for key, value in batch.items():
            assert torch.equal(value, torch.stack([spy.outputs[2 * i + j][key] for j in range(2)])), key

    # 2. every sample entering the pipeline had its face obfuscated, image and fg alike
    stems = {read_mask(p).tobytes(): p.stem for p in sorted((train / "mask").iterdir())}
    for sample in spy.inputs:
        stem = stems[sample["alpha"].tobytes()]
        original = read_image(train / "original_image" / f"{stem}.jpg")
        original_fg = read_image(train / "fg" / f"{stem}.png")
        facemask, alpha = sample["facemask"], sample["alpha"]
        kernel = band_kernel_for(*alpha.shape)
        region = face_region(facemask, alpha, kernel)
        assert region.sum() > 50
        expected = obfuscate_face(original, facemask, method, alpha=alpha, band_kernel=kernel)
        np.testing.assert_array_equal(sample["image"], expected)
        changed = (sample["image"] != original).any(axis=-1)
        assert not changed[~region].any()  # outside the face region: the original pixels
        assert changed[region].mean() > 0.8, changed[region].mean()  # inside: replaced
        if method == "zero":
            assert (sample["image"][region] == 0).all()
        np.testing.assert_array_equal(sample["fg"][region], sample["image"][region])
        np.testing.assert_array_equal(sample["fg"][~region], original_fg[~region])
