"""Pairing a folder of images with a folder of mattes: by stem, every problem named, a stable hold-out."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from p3m.data.folder_pairs import bad_pairs_report, held_out_stems, pair_folders, scan_pair


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def test_files_pair_by_stem_whatever_their_suffix(tmp_path: Path) -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    _write(tmp_path / "images" / "a.jpg", image)
    _write(tmp_path / "images" / "b.PNG", image)
    _write(tmp_path / "images" / ".hidden.jpg", image)
    (tmp_path / "images" / "notes.txt").write_text("not an image")
    _write(tmp_path / "mattes" / "a.png", image[..., 0])
    _write(tmp_path / "mattes" / "b.tif", image[..., 0])
    pairs, bad = pair_folders(tmp_path / "images", tmp_path / "mattes")
    assert [(p.stem, p.image.name, p.matte.name) for p in pairs] == [
        ("a", "a.jpg", "a.png"),
        ("b", "b.PNG", "b.tif"),
    ]
    assert bad == []


def test_every_unpaired_or_doubled_file_is_named(tmp_path: Path) -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    for name in ("a.jpg", "b.jpg", "c.jpg", "c.png"):
        _write(tmp_path / "images" / name, image)
    for name in ("a.png", "c.png", "d.png"):
        _write(tmp_path / "mattes" / name, image[..., 0])
    pairs, bad = pair_folders(tmp_path / "images", tmp_path / "mattes")
    assert [p.stem for p in pairs] == ["a"]
    report = bad_pairs_report(bad, tmp_path / "images", tmp_path / "mattes")
    for name in ("images/b.jpg", "images/c.jpg", "images/c.png", "mattes/d.png"):
        assert name in report, name
    assert (
        report.startswith("4 file(s)") and "no matte named b.*" in report and "no image named d.*" in report
    )
    assert "data.skip_bad_pairs=true" in report


def test_scan_names_unreadable_files_and_size_mismatches(tmp_path: Path) -> None:
    from p3m.data.folder_pairs import Pair

    image = _write(tmp_path / "a.jpg", np.zeros((40, 48, 3), np.uint8))
    matte = _write(tmp_path / "a.png", np.zeros((40, 48), np.uint8))
    small = _write(tmp_path / "small.png", np.zeros((40, 40), np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(image.read_bytes()[:200])
    _, status, info = scan_pair(Pair("a", image, matte))
    assert status == "ok" and '"shape": [40, 48]' in info
    _, status, reason = scan_pair(Pair("a", image, small))
    assert status == "failed" and "48x40 px" in reason and str(small) in reason
    _, status, reason = scan_pair(Pair("a", broken, matte))
    assert status == "failed" and str(broken) in reason


def test_the_held_out_part_is_seeded_stable_and_never_everything() -> None:
    stems = [f"img{i:03d}" for i in range(100)]
    held = held_out_stems(stems, 0.1, seed=0)
    assert len(held) == 10 and held == held_out_stems(list(reversed(stems)), 0.1, seed=0)
    assert held != held_out_stems(stems, 0.1, seed=1)
    # adding images moves few of the held-out stems to training
    grown = held_out_stems([*stems, *(f"new{i}" for i in range(10))], 0.1, seed=0)
    assert len(set(held) - set(grown)) <= 2
    assert held_out_stems(["a", "b"], 0.1, seed=0) in (["a"], ["b"])
    assert held_out_stems(["a", "b"], 0.9, seed=0) in (["a"], ["b"])
    assert held_out_stems(["a"], 0.5, seed=0) == []
