"""P3M-CP: the paste geometry, the public face layouts, and that ICP and FCP change what the network
sees only inside the face region. The network side of FCP is tested in tests/models/test_feature_paste.py."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from p3m.data.datamodule import P3M10kDataModule
from p3m.data.layout import DatasetLayoutError
from p3m.data.transforms import PaperTransform
from p3m.privacy.copy_paste import FaceAugment, paste_face
from p3m.privacy.faces import PublicFaces
from p3m.privacy.modes import PPT, CopyPaste, Obfuscate, PrivacyMode
from p3m.privacy.obfuscate import obfuscation_region
from p3m.privacy.training import face_region

SMALL = {"crop_sizes": [48, 64], "out_size": 64, "kernel_range": [3, 7]}


def ellipse(shape: tuple[int, int], centre: tuple[int, int], axes: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
    return mask > 0


def source_face(side: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    return image, ellipse((side, side), (side // 2, side // 2 + 4), (side // 4, side // 3))


def fresh(dm: P3M10kDataModule, index: int, seed: int) -> dict[str, torch.Tensor]:
    dm.train_set.reseed(seed)
    return dm.train_set[index]


def datamodule(root: Path, privacy: PrivacyMode) -> P3M10kDataModule:
    dm = P3M10kDataModule(
        root=root,
        augmentation=PaperTransform(**SMALL),
        privacy=privacy,
        batch_size=2,
        num_workers=0,
        require_fg_bg=True,
    )
    dm.setup("fit")
    return dm


# -- geometry ------------------------------------------------------------------------------------


def test_paste_stays_inside_the_region_and_covers_it() -> None:
    region = ellipse((120, 100), (52, 50), (20, 28))
    image = np.full((120, 100, 3), 90, np.uint8)
    src, src_mask = source_face()
    upright = FaceAugment(flip_prob=0.0, rotation=0.0, scale=(1.0, 1.0), colour=0.0)
    pasted = paste_face(region, src, src_mask, np.random.default_rng(0), upright)
    assert pasted is not None
    full = pasted.full_mask(image.shape) > 0
    assert not (full & ~region).any()  # never outside the region
    assert full.sum() / region.sum() > 0.9  # the scaled source face covers the blurred face
    out = pasted.apply(image)
    np.testing.assert_array_equal(out[~full], image[~full])
    assert (out[full] != 90).any(axis=-1).mean() > 0.9
    # centre of the pasted face == centre of the region
    ys, xs = np.nonzero(full)
    assert abs(ys.mean() - 50) < 2 and abs(xs.mean() - 52) < 2


def test_paste_is_reproducible_and_random_changes_vary() -> None:
    region = ellipse((120, 100), (50, 50), (20, 28))
    src, src_mask = source_face()
    a = paste_face(region, src, src_mask, np.random.default_rng(7))
    b = paste_face(region, src, src_mask, np.random.default_rng(7))
    c = paste_face(region, src, src_mask, np.random.default_rng(8))
    assert a is not None and b is not None and c is not None
    np.testing.assert_array_equal(a.patch, b.patch)
    assert not np.array_equal(a.patch, c.patch)
    # a large source face shrinks with area averaging first (no aliasing), and still fits
    big, big_mask = cv2.resize(src, (640, 640)), cv2.resize(src_mask.astype(np.uint8), (640, 640)) > 0
    small = paste_face(region, big, big_mask, np.random.default_rng(7))
    assert small is not None and not (small.full_mask(region.shape).astype(bool) & ~region).any()


def test_nothing_to_paste() -> None:
    src, src_mask = source_face()
    empty = np.zeros((64, 64), bool)
    assert paste_face(empty, src, src_mask, np.random.default_rng(0)) is None
    no_face = np.zeros(src_mask.shape, bool)
    assert paste_face(ellipse((64, 64), (32, 32), (9, 12)), src, no_face, np.random.default_rng(0)) is None
    with pytest.raises(ValueError, match="must have the same"):
        paste_face(empty, src, src_mask[:10], np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"privacy\.scale"):
        FaceAugment(scale=(1.2, 1.0))


def test_face_region_is_the_obfuscated_region() -> None:
    rng = np.random.default_rng(0)
    blobs = cv2.GaussianBlur(rng.random((90, 70)).astype(np.float32), (0, 0), 6) > 0.5
    alpha = blobs.astype(np.uint8) * 255
    alpha = cv2.GaussianBlur(alpha, (0, 0), 2)
    face = ellipse((90, 70), (35, 40), (15, 20)).astype(np.uint8) * 255
    expected = obfuscation_region(face, alpha=alpha, band_kernel=7)
    np.testing.assert_array_equal(face_region(face, alpha, band_kernel=7), expected)
    assert 0 < expected.sum() < (face > 0).sum()  # the band removes part of the face here


# -- public face layouts ------------------------------------------------------------------------------


def test_plain_layout_of_the_synthetic_public_faces(tiny_synthetic: Path) -> None:
    faces = PublicFaces(tiny_synthetic / "public_faces")
    assert faces.layout == "plain" and len(faces) == 4
    face = faces.load(0)
    assert face.image.shape[:2] == face.mask.shape and face.mask.dtype == bool and 0 < face.mask.mean() < 0.9


def test_celebamask_hq_layout(tmp_path: Path) -> None:
    root = tmp_path / "CelebAMask-HQ"
    (root / "CelebA-HQ-img").mkdir(parents=True)
    anno = root / "CelebAMask-HQ-mask-anno" / "0"
    anno.mkdir(parents=True)
    cv2.imwrite(str(root / "CelebA-HQ-img" / "1.jpg"), np.full((64, 64, 3), 120, np.uint8))
    parts = {"skin": (8, 24), "nose": (24, 28), "hair": (0, 8)}  # rows of a 32 px mask
    for part, (r0, r1) in parts.items():
        mask = np.zeros((32, 32), np.uint8)
        mask[r0:r1, 8:24] = 255
        cv2.imwrite(str(anno / f"00001_{part}.png"), mask)
    faces = PublicFaces(root)
    assert faces.layout == "celebamask-hq" and len(faces) == 1
    face = faces.load(0)
    assert face.image.shape == (32, 32, 3)  # the 1024-style image shrunk to the 512-style masks
    assert face.mask[8:28, 8:24].all() and not face.mask[:8].any()  # skin + nose, no hair
    with pytest.raises(DatasetLayoutError, match=r"no public source faces .* privacy\.source_dir"):
        PublicFaces(tmp_path / "nothing")
    (anno / "00001_skin.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"00001_skin\.png not found"):
        faces.load(0)


def test_privacy_config_errors_name_the_key(tiny_synthetic: Path) -> None:
    with pytest.raises(ValueError, match=r"privacy\.level='pixel' is unknown"):
        CopyPaste(level="pixel")
    with pytest.raises(ValueError, match=r"privacy\.prob"):
        CopyPaste(prob=2).sample_hook(tiny_synthetic)
    with pytest.raises(TypeError, match="unexpected keyword argument 'method'"):
        CopyPaste(method="blur")  # Hydra's instantiate reports it with the config key
    with pytest.raises(ValueError, match="unknown obfuscation method"):
        Obfuscate(method="pixelate").sample_hook(tiny_synthetic)
    _, dirs = CopyPaste().sample_hook(tiny_synthetic)
    assert dirs == (tiny_synthetic / "public_faces/images", tiny_synthetic / "public_faces/masks")


# -- ICP and FCP change only the face region -----------------------------------------------------------


def test_icp_changes_the_training_sample_only_inside_the_face(tiny_synthetic: Path) -> None:
    ppt = datamodule(tiny_synthetic, PPT())
    icp = datamodule(tiny_synthetic, CopyPaste(level="image", prob=1.0))
    changed = 0
    for index in range(len(ppt.train_set)):
        # the paste happens at full resolution: outside the paste region nothing changes, bit for bit
        sample = icp.train_set.load(index)
        pasted = icp.train_set.privacy_hook.paste(sample, np.random.default_rng(index))
        region = face_region(sample["facemask"], sample["alpha"])
        inside = pasted.full_mask(sample["alpha"].shape) > 0
        assert not (inside & ~region).any()
        np.testing.assert_array_equal(pasted.apply(sample["image"])[~inside], sample["image"][~inside])
        # the training item: the same crop as without CP (separate random streams); the image (and
        # fg) differ only within the resized face mask's footprint
        plain, item = fresh(ppt, index, 5), fresh(icp, index, 5)
        torch.testing.assert_close(plain["alpha"], item["alpha"], rtol=0, atol=0)
        outside = cv2.dilate((item["facemask"][0].numpy() > 0).astype(np.uint8), np.ones((3, 3))) == 0
        for key in ("image", "fg"):
            diff = (plain[key] != item[key]).any(dim=0).numpy()
            assert not diff[outside].any(), key
        changed += int((plain["image"] != item["image"]).any())
    assert changed >= 1


def test_fcp_items_carry_the_pasted_image_and_mask(tiny_synthetic: Path) -> None:
    fcp = datamodule(tiny_synthetic, CopyPaste(level="feature", prob=1.0, stage=2))
    ppt = datamodule(tiny_synthetic, PPT())
    pasted_any = False
    for index in range(len(fcp.train_set)):
        item, plain = fresh(fcp, index, 9), fresh(ppt, index, 9)
        assert "cp_stage" not in item and item["cp_mask"].shape == item["alpha"].shape  # the stage is config
        for key in plain:  # the target is the PPT item: FCP does not touch the image
            torch.testing.assert_close(item[key], plain[key], rtol=0, atol=0)
        mask = item["cp_mask"][0].numpy()
        outside = cv2.dilate((mask > 0).astype(np.uint8), np.ones((3, 3))) == 0
        diff = (item["cp_source"] != item["image"]).any(dim=0).numpy()
        assert not diff[outside].any()
        assert not ((mask > 0) & (item["facemask"][0].numpy() == 0)).any()
        pasted_any |= bool(diff.any())
    assert pasted_any
    off = datamodule(tiny_synthetic, CopyPaste(level="feature", prob=0.0))
    item = fresh(off, 0, 9)
    assert item["cp_mask"].max() == 0 and torch.equal(item["cp_source"], item["image"])
