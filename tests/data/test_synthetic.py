"""The synthetic P3M-style dataset: layout, content invariants, determinism and regeneration."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from p3m.data.synthetic import (
    MANIFEST_NAME,
    ensure_synthetic_dataset,
    render_face_crop,
    render_portrait,
    trimap_kernel_size,
)
from p3m.data.trimap import trimap_from_alpha
from p3m.utils.errors import UserError

SMALL = {"num_train": 3, "num_test": 2, "size": (64, 48), "seed": 3, "num_faces": 2}

TRAIN_DIRS = {
    "blurred_image": ".jpg",
    "original_image": ".jpg",
    "mask": ".png",
    "fg_blurred": ".png",
    "fg": ".png",
    "bg": ".png",
    "facemask": ".png",
}
P_DIRS = {"blurred_image": ".jpg", "mask": ".png", "trimap": ".png", "facemask": ".png"}
NP_DIRS = {"original_image": ".jpg", "mask": ".png", "trimap": ".png"}


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"unreadable {path}"
    return image


def _stems(folder: Path, suffix: str) -> set[str]:
    files = sorted(folder.iterdir())
    assert all(p.suffix == suffix for p in files), f"{folder}: expected only {suffix} files"
    return {p.stem for p in files}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("syn") / "synthetic", **SMALL)


@pytest.mark.parametrize(
    ("split", "dirs", "count"),
    [
        ("train", TRAIN_DIRS, SMALL["num_train"]),
        ("validation/P3M-500-P", P_DIRS, SMALL["num_test"]),
        ("validation/P3M-500-NP", NP_DIRS, SMALL["num_test"]),
    ],
)
def test_layout_is_p3m10k_and_pairs_by_stem(
    small: Path, split: str, dirs: dict[str, str], count: int
) -> None:
    folder = small / split
    assert {p.name for p in folder.iterdir()} == set(dirs), "exactly the official folders (no NP facemask)"
    stems = [_stems(folder / name, suffix) for name, suffix in dirs.items()]
    assert len(stems[0]) == count
    assert all(s == stems[0] for s in stems)
    for stem in stems[0]:
        shapes = {_read(folder / name / f"{stem}{suffix}").shape[:2] for name, suffix in dirs.items()}
        assert shapes == {SMALL["size"]}


def test_public_faces_pair_images_and_binary_masks(small: Path) -> None:
    images = _stems(small / "public_faces" / "images", ".jpg")
    assert images == _stems(small / "public_faces" / "masks", ".png")
    assert len(images) == SMALL["num_faces"]
    for stem in images:
        mask = _read(small / "public_faces" / "masks" / f"{stem}.png")
        assert mask.ndim == 2 and set(np.unique(mask)) == {0, 255}
        assert _read(small / "public_faces" / "images" / f"{stem}.jpg").shape == (*mask.shape, 3)


def test_alpha_has_hair_like_fractional_values() -> None:
    p = render_portrait(np.random.default_rng(0), 256, 192)
    fractional = (p.alpha > 0) & (p.alpha < 255)
    assert 0.02 < fractional.mean() < 0.3
    # Hair strands: fractional alpha well away from the solid silhouette, not only a 1-2 px edge.
    solid = cv2.dilate((p.alpha == 255).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert (fractional & ~solid).sum() > 100
    assert (p.alpha == 0).any() and (p.alpha == 255).any()


def test_facemask_is_in_the_head_where_alpha_is_one() -> None:
    for seed in range(4):
        p = render_portrait(np.random.default_rng(seed), 256, 192)
        face = p.facemask > 0
        assert set(np.unique(p.facemask)) == {0, 255}
        assert face.sum() > 0.01 * face.size
        assert (p.alpha[face] == 255).all()
        rows = np.flatnonzero(face.any(axis=1))
        assert rows.max() < 0.6 * p.alpha.shape[0], "the face is in the upper part (the head)"


def test_composites_follow_alpha_blending() -> None:
    p = render_portrait(np.random.default_rng(1), 128, 96)
    a = p.alpha[..., None] / 255.0
    for image, fg in ((p.original, p.fg), (p.blurred, p.fg_blurred)):
        composite = a * fg + (1 - a) * p.bg
        assert np.abs(composite - image).max() <= 0.5 + 1e-6  # one rounding


def test_blur_changes_only_the_face(small: Path) -> None:
    face = render_portrait(np.random.default_rng(2), 128, 96)
    inside = face.facemask > 0
    diff = np.abs(face.blurred.astype(int) - face.original).max(axis=2)
    assert (diff[~inside] == 0).all()
    assert diff[inside].mean() > 3, "the face must actually be blurred"
    assert (face.fg_blurred[~inside] == face.fg[~inside]).all()

    # On disk (JPEG, 4:4:4) the images differ only in 8x8 blocks that touch the face mask.
    train = small / "train"
    for path in (train / "facemask").iterdir():
        mask = _read(path) > 0
        blurred = _read(train / "blurred_image" / f"{path.stem}.jpg").astype(int)
        original = _read(train / "original_image" / f"{path.stem}.jpg").astype(int)
        h, w = mask.shape
        touched = np.zeros((-(-h // 8), -(-w // 8)), bool)
        ys, xs = np.nonzero(mask)
        touched[ys // 8, xs // 8] = True
        blocks = np.kron(touched, np.ones((8, 8), bool))[:h, :w]
        changed = np.abs(blurred - original).max(axis=2) > 0
        assert not (changed & ~blocks).any()
        assert changed[mask].any()


def test_test_trimaps_follow_the_training_rule(small: Path) -> None:
    folder = small / "validation" / "P3M-500-NP"
    k = trimap_kernel_size(*SMALL["size"])
    for path in (folder / "mask").iterdir():
        trimap = _read(folder / "trimap" / path.name)
        np.testing.assert_array_equal(trimap, trimap_from_alpha(_read(path), k))
        assert {0, 128, 255} <= set(np.unique(trimap))


def test_trimap_kernel_scales_with_size() -> None:
    assert trimap_kernel_size(1080, 1440) == 25
    assert trimap_kernel_size(256, 192) == 5
    assert trimap_kernel_size(32, 32) == 3
    assert all(trimap_kernel_size(s, s) % 2 == 1 for s in range(32, 2000, 37))


def test_deterministic_given_the_seed(tmp_path: Path) -> None:
    a = ensure_synthetic_dataset(tmp_path / "a", **SMALL)
    b = ensure_synthetic_dataset(tmp_path / "b", **SMALL)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    other = render_portrait(np.random.default_rng(SMALL["seed"] + 1), 64, 48)
    assert not np.array_equal(
        other.alpha, render_portrait(np.random.default_rng(SMALL["seed"]), 64, 48).alpha
    )


def test_samples_do_not_depend_on_the_counts(tmp_path: Path) -> None:
    few = ensure_synthetic_dataset(tmp_path / "few", **{**SMALL, "num_train": 1})
    rel = Path("train/mask/syn_train_0000.png")
    assert (few / rel).read_bytes() == (
        ensure_synthetic_dataset(tmp_path / "many", **SMALL) / rel
    ).read_bytes()


def test_idempotent_and_regenerates_on_parameter_change(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "syn", **SMALL)
    mask = root / "train" / "mask" / "syn_train_0000.png"
    stamp = mask.stat().st_mtime_ns
    ensure_synthetic_dataset(root, **SMALL)
    assert mask.stat().st_mtime_ns == stamp, "same parameters: nothing is rewritten"

    ensure_synthetic_dataset(root, **{**SMALL, "num_train": 2, "seed": 4})
    assert len(list((root / "train" / "mask").iterdir())) == 2
    assert json.loads((root / MANIFEST_NAME).read_text())["params"]["seed"] == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folders left"


def test_incomplete_dataset_is_regenerated(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "syn", **SMALL)
    (root / "train" / "fg" / "syn_train_0001.png").unlink()
    ensure_synthetic_dataset(root, **SMALL)
    assert (root / "train" / "fg" / "syn_train_0001.png").is_file()


def test_interrupted_generation_leaves_no_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import p3m.data.synthetic as synthetic

    calls = {"n": 0}
    real = synthetic.render_portrait

    def failing(*args, **kwargs):  # the third portrait "crashes"
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "render_portrait", failing)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_dataset(tmp_path / "syn", **SMALL)
    assert list(tmp_path.iterdir()) == [], "neither the dataset nor its temporary folder remains"
    monkeypatch.undo()
    assert (ensure_synthetic_dataset(tmp_path / "syn", **SMALL) / MANIFEST_NAME).is_file()


def test_refuses_to_overwrite_a_real_dataset(tmp_path: Path) -> None:
    real = tmp_path / "P3M-10k"
    (real / "train" / "mask").mkdir(parents=True)
    with pytest.raises(UserError, match="not a synthetic dataset"):
        ensure_synthetic_dataset(real, **SMALL)
    assert (real / "train" / "mask").is_dir()


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"size": (16, 64)}, "at least 32"),
        ({"size": (64,)}, r"\[height, width\]"),
        ({"num_train": 0}, "num_train"),
        ({"num_test": -1}, "num_test"),
    ],
)
def test_bad_parameters_are_named(tmp_path: Path, override: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ensure_synthetic_dataset(tmp_path / "syn", **{**SMALL, **override})


def test_tiny_sizes_and_config_values(tmp_path: Path) -> None:
    # Hydra passes lists (ListConfig); the smallest size still has a face, hair and all three trimap values.
    root = ensure_synthetic_dataset(tmp_path / "syn", num_train=2, num_test=1, size=[32, 40], num_faces=1)
    alpha = _read(root / "validation" / "P3M-500-P" / "mask" / "syn_valp_0000.png")
    assert alpha.shape == (32, 40)
    assert ((alpha > 0) & (alpha < 255)).any()
    assert _read(root / "train" / "facemask" / "syn_train_0000.png").any()
    face = render_face_crop(np.random.default_rng(0), 32)
    assert face.image.shape == (32, 32, 3) and face.mask.any()


def _user_files(root: Path) -> dict[str, bytes]:
    """Files a user (or src/prepare.py, or the packed-array writer) added to a synthetic root."""
    files = {
        "train/fg_blurred/syn_train_0000.npy": b"prepare.py fg_bg_format=npy",
        "train/bg/syn_train_0000.npy": b"a converted background",
        "train/packed/images.npy": b"packed training arrays",
        "train/mask/NOTES.txt": b"a user's file inside a generated folder",
        "my_annotations/a.json": b"{}",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_files_the_generator_did_not_write_never_make_a_root_incomplete(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "syn", **SMALL)
    mask = root / "train" / "mask" / "syn_train_0000.png"
    stamp = mask.stat().st_mtime_ns
    added = _user_files(root)
    ensure_synthetic_dataset(root, **SMALL)
    assert mask.stat().st_mtime_ns == stamp, "nothing was regenerated"
    assert {rel: (root / rel).read_bytes() for rel in added} == added

    # a root from before the manifest listed its files: the files follow from its parameters
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    (root / MANIFEST_NAME).write_text(json.dumps({k: manifest[k] for k in ("generator", "params", "layout")}))
    ensure_synthetic_dataset(root, **SMALL)
    assert mask.stat().st_mtime_ns == stamp


def test_regeneration_replaces_only_the_generators_own_files(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "syn", **SMALL)
    added = _user_files(root)
    (root / "train" / "fg" / "syn_train_0001.png").unlink()  # incomplete: regenerated in place
    ensure_synthetic_dataset(root, **SMALL)
    assert (root / "train" / "fg" / "syn_train_0001.png").is_file()
    ensure_synthetic_dataset(root, **{**SMALL, "num_train": 2, "seed": 4})  # other parameters
    assert sorted(p.name for p in (root / "train" / "fg").iterdir()) == [
        "syn_train_0000.png",
        "syn_train_0001.png",
    ]
    assert {rel: (root / rel).read_bytes() for rel in added} == added
    assert json.loads((root / MANIFEST_NAME).read_text())["params"]["seed"] == 4
    fresh = ensure_synthetic_dataset(tmp_path / "fresh", **{**SMALL, "num_train": 2, "seed": 4})
    for rel in ("train/fg/syn_train_0001.png", "validation/P3M-500-P/trimap/syn_valp_0001.png"):
        assert (root / rel).read_bytes() == (fresh / rel).read_bytes()
    assert not [p for p in root.rglob(".*")], "no temporary files left"


def test_a_foreign_file_where_the_generator_would_write_is_refused(tmp_path: Path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "syn", **SMALL)
    theirs = root / "train" / "mask" / f"syn_train_{SMALL['num_train']:04d}.png"  # the next sample's name
    theirs.write_bytes(b"not the generator's")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(
        UserError, match=r"1 file\(s\) where the synthetic generator would write .*syn_train_0003"
    ):
        ensure_synthetic_dataset(root, **{**SMALL, "num_train": SMALL["num_train"] + 1})
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
