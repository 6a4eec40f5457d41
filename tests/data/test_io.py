"""Image reading: colour order, channel and bit-depth handling, and errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from p3m.data.io import (
    ImageReadError,
    ImageSizeError,
    check_same_size,
    read_image,
    read_mask,
    read_rgb,
    read_rgb_array,
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_rgb_jpeg_and_png_match_pil(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8), (0, 0), 1)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    for name in ("a.jpg", "a.png"):
        ours = read_image(tmp_path / name)
        assert ours.dtype == np.uint8 and ours.shape == (48, 40, 3)
        np.testing.assert_array_equal(ours, np.asarray(Image.open(tmp_path / name)))  # RGB, not BGR


def test_grey_image_becomes_three_channels(tmp_path: Path, rng: np.random.Generator) -> None:
    grey = rng.integers(0, 256, (40, 36), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    image = read_image(tmp_path / "g.png")
    assert image.shape == (40, 36, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], grey)


def test_rgba_image_drops_alpha(tmp_path: Path, rng: np.random.Generator) -> None:
    rgba = rng.integers(0, 256, (40, 36, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "x.png")
    np.testing.assert_array_equal(read_image(tmp_path / "x.png"), rgba[:, :, :3])


def test_16_bit_image_is_scaled_to_8_bits(tmp_path: Path, rng: np.random.Generator) -> None:
    deep = rng.integers(0, 65536, (40, 36, 3), dtype=np.uint16)
    deep[0, 0] = (0, 257 * 7, 65535)
    cv2.imwrite(str(tmp_path / "d.png"), deep[:, :, ::-1])
    image = read_image(tmp_path / "d.png")
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, np.round(deep / 257.0).astype(np.uint8))
    assert tuple(image[0, 0]) == (0, 7, 255)


def test_16_bit_alpha_keeps_precision_as_float(tmp_path: Path, rng: np.random.Generator) -> None:
    alpha = rng.integers(0, 65536, (40, 36), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), alpha)
    as_float = read_mask(tmp_path / "a.png", dtype=np.float32)
    assert as_float.dtype == np.float32
    np.testing.assert_allclose(as_float, alpha / 65535.0, atol=1e-7)
    np.testing.assert_array_equal(read_mask(tmp_path / "a.png"), np.round(alpha / 257.0).astype(np.uint8))


def test_colour_mask_keeps_first_channel_like_pil(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), rgb[:, :, 0])


def test_8_bit_mask_as_float(tmp_path: Path) -> None:
    mask = np.tile(np.arange(256, dtype=np.uint8)[None], (32, 1))
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    np.testing.assert_array_equal(
        read_mask(tmp_path / "m.png", dtype=np.float32), mask.astype(np.float32) / 255
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "does not exist"),
        (b"", "empty"),
        (b"not an image at all", "cannot decode"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "broken.png"
    if content is not None:
        path.write_bytes(content)
    for reader in (read_image, read_mask):
        with pytest.raises(ImageReadError, match=reason) as info:
            reader(path)
        assert info.value.path == path and str(path) in str(info.value)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_files_are_errors(tmp_path: Path, rng: np.random.Generator, suffix: str) -> None:
    whole = tmp_path / f"whole{suffix}"
    cv2.imwrite(str(whole), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageReadError, match=r"truncated") as info:
        read_image(cut)
    assert str(cut) in str(info.value)


def _encoded(suffix: str, image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(suffix, image, [cv2.IMWRITE_JPEG_QUALITY, 90] if suffix == ".jpg" else [])
    assert ok
    return encoded.tobytes()


def _with_exif_thumbnail(jpeg: bytes, thumbnail: bytes) -> bytes:
    """`jpeg` with an APP1 EXIF segment whose IFD1 holds `thumbnail` (a JPEG: its own SOI ... EOI)."""
    import struct

    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)  # big-endian TIFF header, IFD0 at offset 8
    tiff += struct.pack(">HI", 0, 14)  # IFD0: no entries, IFD1 at offset 14
    ifd1_size = 2 + 2 * 12 + 4
    tiff += struct.pack(">H", 2)
    tiff += struct.pack(">HHII", 0x0201, 4, 1, 14 + ifd1_size)  # JPEGInterchangeFormat (offset)
    tiff += struct.pack(">HHII", 0x0202, 4, 1, len(thumbnail))  # JPEGInterchangeFormatLength
    tiff += struct.pack(">I", 0) + thumbnail
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_data_after_the_end_marker_is_accepted(tmp_path: Path, rng: np.random.Generator) -> None:
    """Phone "motion photos" append a video after the JPEG's EOI; some tools append bytes after IEND."""
    rgb = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(8000)  # longer than any tail a reader might search
    (tmp_path / "motion.jpg").write_bytes(_encoded(".jpg", rgb) + video)
    (tmp_path / "tail.png").write_bytes(_encoded(".png", rgb) + b"trailing bytes " * 20)
    cv2.imwrite(str(tmp_path / "plain.jpg"), rgb, [cv2.IMWRITE_JPEG_QUALITY, 90])
    np.testing.assert_array_equal(read_image(tmp_path / "motion.jpg"), read_image(tmp_path / "plain.jpg"))
    np.testing.assert_array_equal(read_image(tmp_path / "tail.png"), rgb[:, :, ::-1])


def test_truncated_jpeg_with_an_exif_thumbnail_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    """The thumbnail's own EOI must not pass for the image's: markers are walked, not searched."""
    thumbnail = _encoded(".jpg", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    image = _encoded(".jpg", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    photo = _with_exif_thumbnail(image, thumbnail)
    (tmp_path / "whole.jpg").write_bytes(photo)
    assert read_image(tmp_path / "whole.jpg").shape == (256, 256, 3)
    cut_at = photo.index(thumbnail) + len(thumbnail) + 3000  # the thumbnail's EOI stays near the end
    (tmp_path / "cut.jpg").write_bytes(photo[:cut_at])
    with pytest.raises(ImageReadError, match="truncated JPEG"):
        read_image(tmp_path / "cut.jpg")


def test_stray_bytes_between_jpeg_segments_are_skipped_as_libjpeg_does(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    rgb = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    jpeg = _encoded(".jpg", rgb)
    after_app0 = 4 + int.from_bytes(jpeg[4:6], "big")  # SOI, then APP0's marker and length
    (tmp_path / "stray.jpg").write_bytes(jpeg[:after_app0] + b"\x00\x00" + jpeg[after_app0:])
    (tmp_path / "plain.jpg").write_bytes(jpeg)
    np.testing.assert_array_equal(read_image(tmp_path / "stray.jpg"), read_image(tmp_path / "plain.jpg"))


def test_png_cut_just_before_iend_is_refused(tmp_path: Path, rng: np.random.Generator) -> None:
    png = _encoded(".png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
    (tmp_path / "cut.png").write_bytes(png[:-12])  # every IDAT, no IEND chunk
    with pytest.raises(ImageReadError, match="truncated PNG"):
        read_mask(tmp_path / "cut.png")


def test_tiny_images_are_errors(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "tiny.png"), np.zeros((20, 64), np.uint8))
    with pytest.raises(ImageSizeError, match=r"tiny\.png is 20x64"):
        read_image(tmp_path / "tiny.png")
    with pytest.raises(ImageSizeError, match=r"at least 32"):
        read_mask(tmp_path / "tiny.png")


def test_exif_orientation_only_on_request(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, (40, 64, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    assert read_image(tmp_path / "phone.jpg").shape == (40, 64, 3)  # stored order, as PIL / training
    assert read_image(tmp_path / "phone.jpg", exif=True).shape == (64, 40, 3)


def test_size_mismatch_names_both_files() -> None:
    image, mask = np.zeros((40, 50, 3), np.uint8), np.zeros((40, 52), np.uint8)
    check_same_size((Path("img.jpg"), image), [(Path("ok.png"), np.zeros((40, 50), np.uint8))])
    with pytest.raises(ImageSizeError, match=r"m\.png is 40x52 but img\.jpg is 40x50"):
        check_same_size((Path("img.jpg"), image), [(Path("m.png"), mask)])


def test_npy_is_memory_mapped_read_only(tmp_path: Path, rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    np.save(tmp_path / "fg.npy", rgb)
    mapped = read_rgb_array(tmp_path / "fg.npy")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, rgb)
    np.testing.assert_array_equal(read_rgb(tmp_path / "fg.npy"), rgb)  # dispatch by suffix
    cv2.imwrite(str(tmp_path / "fg.png"), rgb[:, :, ::-1])
    np.testing.assert_array_equal(read_rgb(tmp_path / "fg.png"), rgb)
    np.save(tmp_path / "fortran.npy", np.asfortranarray(rgb))
    fortran = read_rgb_array(tmp_path / "fortran.npy")
    assert fortran.flags.c_contiguous  # OpenCV needs contiguous rows
    np.testing.assert_array_equal(fortran, rgb)


def _npy_bytes(array: np.ndarray, path: Path) -> bytes:
    np.save(path, array)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", "does not exist"),
        ("empty", "empty"),
        ("png", "not a .npy file"),
        ("float", r"float32 array of shape \(40, 36, 3\); expected uint8 \(H, W, 3\)"),
        ("grey", r"shape \(40, 36\); expected uint8 \(H, W, 3\)"),
        ("rgba", r"shape \(40, 36, 4\)"),
        ("truncated", "truncated .npy"),
        ("header", "truncated .npy"),
    ],
)
def test_bad_npy_names_the_file(tmp_path: Path, case: str, reason: str) -> None:
    rgb = np.zeros((40, 36, 3), np.uint8)
    scratch = tmp_path / "scratch.npy"
    content = {
        "missing": None,
        "empty": b"",
        "png": cv2.imencode(".png", rgb)[1].tobytes(),
        "float": _npy_bytes(rgb.astype(np.float32), scratch),
        "grey": _npy_bytes(rgb[:, :, 0], scratch),
        "rgba": _npy_bytes(np.zeros((40, 36, 4), np.uint8), scratch),
        "truncated": _npy_bytes(rgb, scratch)[:1000],
        "header": _npy_bytes(rgb, scratch)[:60],
    }[case]
    path = tmp_path / "bg.npy"
    if content is not None:
        path.write_bytes(content)
    for reader in (read_rgb_array, read_rgb):
        with pytest.raises(ImageReadError, match=reason) as info:
            reader(path)
        assert info.value.path == path and str(path) in str(info.value)


def test_tiny_npy_is_a_size_error_and_sizes_compare_without_reading(tmp_path: Path) -> None:
    np.save(tmp_path / "tiny.npy", np.zeros((20, 64, 3), np.uint8))
    with pytest.raises(ImageSizeError, match=r"tiny\.npy is 20x64"):
        read_rgb_array(tmp_path / "tiny.npy")
    np.save(tmp_path / "fg.npy", np.zeros((40, 52, 3), np.uint8))
    mapped = read_rgb_array(tmp_path / "fg.npy")
    with pytest.raises(ImageSizeError, match=r"fg\.npy is 40x52 but img\.jpg is 40x50"):
        check_same_size((Path("img.jpg"), np.zeros((40, 50, 3), np.uint8)), [(tmp_path / "fg.npy", mapped)])
