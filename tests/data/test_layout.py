"""Dataset layout: discovery, pairing by stem, privacy modes, evaluation splits and their errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from p3m.data.eval_splits import EvalSplit, parse_eval_splits
from p3m.data.layout import (
    BLURRED_READS,
    ORIGINAL_READS,
    DatasetLayoutError,
    MissingPartnerError,
    P3M10kLayout,
)
from tests.data import EVAL_SPLITS, make_p3m_tree

SPLITS = parse_eval_splits(EVAL_SPLITS)


def test_missing_or_unset_root_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"data.root is not set.*P3M10K_ROOT.*data=synthetic"):
        P3M10kLayout(None)
    with pytest.raises(
        DatasetLayoutError, match=r"P3M-10k not found at .*nowhere: expected train/blurred_image"
    ):
        P3M10kLayout(tmp_path / "nowhere")


def test_wrong_layout_lists_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(
        DatasetLayoutError, match=r"expected train/blurred_image and train/mask.*found no train/"
    ):
        P3M10kLayout(tmp_path).train_split()
    (tmp_path / "train" / "blurred_image").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"expected train/mask \(found train/\{blurred_image\}\)"):
        P3M10kLayout(tmp_path).train_split()


def test_train_split_pairs_by_stem(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path, num_train=3, facemask=True)
    split = P3M10kLayout(root).train_split(BLURRED_READS, require_fg_bg=True)
    assert [f.stem for f in split.files] == ["p_0000", "p_0001", "p_0002"]
    first = split.files[0]
    assert (
        first.image == root / "train/blurred_image/p_0000.jpg"
        and first.alpha == root / "train/mask/p_0000.png"
    )
    assert first.fg == root / "train/fg_blurred/p_0000.png" and first.bg == root / "train/bg/p_0000.jpg"
    assert first.facemask == root / "train/facemask/p_0000.png"
    without = P3M10kLayout(root).train_split(BLURRED_READS, require_fg_bg=False, load_facemask=False)
    assert without.files[0].fg is None and without.files[0].bg is None and without.files[0].facemask is None
    assert without.read_dirs == (root / "train/blurred_image", root / "train/mask")


def test_image_without_mask_and_mask_without_image(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path, num_train=3)
    (root / "train/mask/p_0001.png").unlink()
    with pytest.raises(
        MissingPartnerError, match=r"1 file\(s\) in .*blurred_image have no partner in .*mask: p_0001"
    ):
        P3M10kLayout(root).train_split()
    shutil.copy(root / "train/mask/p_0000.png", root / "train/mask/p_0001.png")
    for i in range(7):
        shutil.copy(root / "train/mask/p_0000.png", root / f"train/mask/extra_{i}.png")
    with pytest.raises(
        MissingPartnerError, match=r"7 file\(s\) in .*mask have no partner .*extra_0.*\(and 2 more\)"
    ):
        P3M10kLayout(root).train_split()


def test_duplicate_stems_and_hidden_files(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path, num_train=2)
    (root / "train/mask/.p_0000.png.tmp").write_bytes(b"partial write")  # ignored
    (root / "train/mask/notes.txt").write_text("ignored")
    assert len(P3M10kLayout(root).train_split().files) == 2
    shutil.copy(root / "train/blurred_image/p_0000.jpg", root / "train/blurred_image/p_0000.png")
    with pytest.raises(DatasetLayoutError, match=r"same stem: p_0000"):
        P3M10kLayout(root).train_split()


def test_fg_bg_required_but_missing_names_the_prepare_command(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path, fg_dir=None, bg=False)
    with pytest.raises(
        DatasetLayoutError,
        match=r"no train/fg_blurred or train/fg and no train/bg.*p3m prepare data\.root=",
    ):
        P3M10kLayout(root).train_split(require_fg_bg=True)
    assert len(P3M10kLayout(root).train_split(require_fg_bg=False).files) == 4


def test_fg_folder_choice_per_privacy_mode(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path, fg_dir="fg", original=True)
    # Next to original images, train/fg may hold unblurred faces: PPT refuses it.
    with pytest.raises(DatasetLayoutError, match=r"privacy=ppt needs .*train/fg_blurred.*p3m prepare"):
        P3M10kLayout(root).train_split(BLURRED_READS, require_fg_bg=True)
    shutil.copytree(root / "train/fg", root / "train/fg_blurred")
    assert (
        P3M10kLayout(root).train_split(BLURRED_READS, require_fg_bg=True).files[0].fg.parent.name
        == "fg_blurred"
    )
    assert P3M10kLayout(root).train_split(ORIGINAL_READS, require_fg_bg=True).files[0].fg.parent.name == "fg"
    plain = make_p3m_tree(tmp_path / "p3m", fg_dir="fg")  # the official layout: train/fg of blurred images
    assert P3M10kLayout(plain).train_split(BLURRED_READS, require_fg_bg=True).files[0].fg.parent.name == "fg"


def test_privacy_modes_read_only_their_images(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path, original=True, facemask=True)
    ppt = P3M10kLayout(root).train_split(BLURRED_READS, require_fg_bg=True)
    assert all("original" not in d.name for d in ppt.read_dirs)
    assert all(f.image.parent == root / "train/blurred_image" for f in ppt.files)
    none = P3M10kLayout(root).train_split(ORIGINAL_READS)
    assert none.read_dirs[0] == root / "train/original_image"
    (root / "train/original_image").rename(root / "train/original")  # the accepted alias
    assert P3M10kLayout(root).train_split(ORIGINAL_READS).read_dirs[0] == root / "train/original"


def test_privacy_none_on_p3m10k_is_a_clear_error(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path)
    with pytest.raises(
        DatasetLayoutError, match=r"privacy=none reads non-anonymized .*train/original_image.*use privacy=ppt"
    ):
        P3M10kLayout(root).train_split(ORIGINAL_READS)


@pytest.mark.parametrize("validation_level", [True, False])
def test_eval_splits_with_and_without_validation_folder(tmp_path: Path, validation_level: bool) -> None:
    root = make_p3m_tree(tmp_path, num_eval=3, validation_level=validation_level)
    layout = P3M10kLayout(root)
    files_p, files_np = layout.eval_files(SPLITS[0]), layout.eval_files(SPLITS[1])
    assert [f.stem for f in files_p] == ["p_0000", "p_0001", "p_0002"] and len(files_np) == 3
    assert files_p[0].trimap is not None and files_p[0].facemask is None  # facemask folder absent: fine
    base = root / "validation" if validation_level else root
    assert files_np[0].image == base / "P3M-500-NP/original_image/np_0000.jpg"


def test_eval_split_errors(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path)
    layout = P3M10kLayout(root)
    shutil.rmtree(root / "validation/P3M-500-NP/trimap")
    with pytest.raises(
        DatasetLayoutError, match=r"P3M-500-NP: trimap_dir .* not found; set its trimap_dir to null"
    ):
        layout.eval_files(SPLITS[1])
    no_trimap = EvalSplit(**{**EVAL_SPLITS[1], "trimap_dir": None})
    assert layout.eval_files(no_trimap)[0].trimap is None
    wrong = EvalSplit(**{**EVAL_SPLITS[0], "image_dir": "P3M-500-P/images"})
    with pytest.raises(DatasetLayoutError, match=r"P3M-500-P: image_dir .*P3M-500-P/images not found"):
        layout.eval_files(wrong)
    (root / "validation/P3M-500-P/facemask").mkdir()
    with pytest.raises(MissingPartnerError, match=r"no partner in .*facemask: p_0000, p_0001"):
        layout.eval_files(SPLITS[0])


def test_eval_split_config_errors() -> None:
    with pytest.raises(ValueError, match=r"eval_splits\[0\].*missing mask_dir"):
        parse_eval_splits([{"name": "a", "prefix": "a", "image_dir": "x"}])
    with pytest.raises(ValueError, match=r"unknown keys alpha_dir"):
        parse_eval_splits([{**EVAL_SPLITS[0], "alpha_dir": "x"}])
    with pytest.raises(ValueError, match=r"duplicate prefix"):
        parse_eval_splits([EVAL_SPLITS[0], {**EVAL_SPLITS[1], "prefix": "p"}])


def test_npy_fg_bg_win_over_image_files_of_the_same_stem(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path, num_train=3)
    for folder in ("fg_blurred", "bg"):
        (root / "train" / folder / "p_0000.npy").write_bytes(b"only listed here, not read")
    (root / "train/bg/p_0001.npy").write_bytes(b"")
    (root / "train/blurred_image/p_0002.npy").write_bytes(b"")  # arrays are fg/bg only: ignored here
    files = {f.stem: f for f in P3M10kLayout(root).train_split(require_fg_bg=True).files}
    assert sorted(files) == ["p_0000", "p_0001", "p_0002"]
    assert (files["p_0000"].fg.name, files["p_0000"].bg.name) == ("p_0000.npy", "p_0000.npy")
    assert (files["p_0001"].fg.name, files["p_0001"].bg.name) == ("p_0001.png", "p_0001.npy")
    assert files["p_0002"].image.suffix == ".jpg" and files["p_0002"].bg.suffix == ".jpg"
    # Without a .npy, two image files of one stem are still a clash.
    shutil.copy(root / "train/bg/p_0002.jpg", root / "train/bg/p_0002.png")
    with pytest.raises(DatasetLayoutError, match=r"bg has several files with the same stem: p_0002"):
        P3M10kLayout(root).train_split(require_fg_bg=True)
    # A mask folder does not take arrays.
    (root / "train/bg/p_0002.png").unlink()
    (root / "train/mask/p_0000.npy").write_bytes(b"")
    assert P3M10kLayout(root).train_split().files[0].alpha.suffix == ".png"


def test_eval_split_prefix_is_the_short_name_and_np_compares_with_p() -> None:
    with pytest.raises(ValueError, match=r"prefix='val/p' holds a '/'.*prefix: p.*stage is prepended"):
        parse_eval_splits([{**EVAL_SPLITS[0], "prefix": "val/p"}])
    p_split, np_split = parse_eval_splits(EVAL_SPLITS)
    assert (p_split.gap_to, np_split.gap_to) == (None, "p")  # the default base of np
    (extra,) = parse_eval_splits([{**EVAL_SPLITS[0], "name": "Z", "prefix": "p_zero", "gap_to": "p"}])
    assert extra.gap_to == "p"
