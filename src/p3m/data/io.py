"""Reading images and alpha mattes with OpenCV, with errors that name the file.

Decoding is the largest cost of a training sample, so everything goes through ``cv2.imdecode`` on the
file's bytes (OpenCV's libjpeg-turbo is faster than PIL's path and decodes the P3M-10k JPEGs to the
same pixels). Conventions, chosen so that 8-bit RGB JPEG / grey PNG files (all of P3M-10k) give
exactly what the official ``np.array(PIL.Image.open(path))`` gives:

- images come back RGB uint8 (H, W, 3): grey images are repeated to 3 channels, an alpha channel
  (RGBA / grey+alpha) is dropped, not composited, and 16-bit images are scaled to 0..255 with
  rounding (``round(v / 257)``);
- masks (alpha mattes, face masks, trimaps) come back (H, W): from a multi-channel file the first
  colour channel (R, as ``PIL``'s ``[:, :, 0]``) is kept; 16-bit masks are ``v / 65535``, either as
  float32 in [0, 1] or rounded to uint8 0..255;
- EXIF orientation is ignored by default, as PIL (and so the official training and evaluation code)
  ignores it; ``exif=True`` (the predict path, for photos from phones) applies it.

A missing, empty, undecodable or truncated file raises :class:`ImageReadError` naming the file.
Truncation is found by walking the JPEG segments and scans (PNG chunks) to the end marker, so data
after it (phone "motion photos" append a video) is accepted and an EXIF thumbnail's own end marker
is not mistaken for the image's.

Estimated foregrounds and backgrounds may also be stored as ``.npy`` arrays (``src/prepare.py
fg_bg_format=npy``), and the packed training format (``pack=true``) stores images and masks so too:
:func:`read_rgb_array` / :func:`read_mask_array` memory-map them instead of decoding, so a training
crop touches only the rows and columns it uses; :func:`read_rgb` / :func:`read_map` pick the reader by
suffix.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from p3m.utils.errors import UserError

MIN_IMAGE_SIDE = 32  # the network downsamples 32x; a smaller picture is a broken file, not a sample
_IMAGE_FLAGS = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION
_JPEG_MAGIC = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND"
_PNG_CHUNK_HEAD = struct.Struct(">I4s")  # chunk data length, chunk type
# A marker inside entropy-coded data: 0xFF then anything but 0x00 (stuffing), RST0-7 or 0xFF (fill).
_JPEG_SCAN_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_NPY_MAGIC = b"\x93NUMPY"
ARRAY_SUFFIX = ".npy"  # uncompressed (H, W, 3) uint8 RGB arrays, the fast fg/bg format


class ImageReadError(UserError, OSError):
    """A file that should hold an image or mask cannot be read.

    Attributes:
        path: the file.
        reason: what is wrong with it, in words.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot read {self.path}: {reason}")


class ImageSizeError(UserError, ValueError):
    """Maps of one sample disagree in size, or an image is too small to be a sample."""


def _read_head(path: Path, size: int = -1, kind: str = "an image file") -> bytes:
    """The file's bytes (only the first ``size`` if given); unreadable or empty files raise."""
    try:
        with path.open("rb") as f:
            data = f.read(size)
    except FileNotFoundError:
        raise ImageReadError(path, "the file does not exist") from None
    except IsADirectoryError:
        raise ImageReadError(path, f"it is a directory, not {kind}") from None
    except OSError as err:
        raise ImageReadError(path, f"{type(err).__name__}: {err}") from None
    if not data:
        raise ImageReadError(path, "the file is empty")
    return data


def _jpeg_is_complete(data: bytes) -> bool:
    """True if a JPEG's marker structure reaches its end-of-image marker (EOI).

    Walks the segments by their lengths, so an APP segment's contents (an EXIF thumbnail carries
    its own SOI and EOI) are never mistaken for the image's markers, then scans each entropy-coded
    scan for the next marker: inside scan data a 0xFF byte is always followed by 0x00 (stuffing) or
    a restart marker, so the regex finds exactly the real markers. Bytes after the EOI (phone
    "motion photos" append a video there) are allowed: decoders stop at the EOI.
    """
    pos, end = 2, len(data)  # after SOI
    while pos + 4 <= end:
        if data[pos] != 0xFF:  # stray bytes between segments: libjpeg skips to the next marker too
            found = _JPEG_SCAN_MARKER.search(data, pos)
            if found is None:
                return False
            pos = found.start()
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:
            return True
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length field
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            found = _JPEG_SCAN_MARKER.search(data, pos)
            if found is None:
                return False
            pos = found.start()
    return pos + 2 <= end and data[pos : pos + 2] == _JPEG_END


def _png_is_complete(data: bytes) -> bool:
    """True if a PNG's chunks, walked by their lengths, reach IEND (bytes after it are allowed)."""
    pos, end = len(_PNG_MAGIC), len(data)
    while pos + 8 <= end:
        length, kind = _PNG_CHUNK_HEAD.unpack_from(data, pos)
        pos += 12 + length  # length, type, data, CRC
        if kind == _PNG_END:
            return pos <= end
    return False


def _read_bytes(path: Path) -> np.ndarray:
    data = _read_head(path)
    # libjpeg decodes a truncated JPEG into a grey-padded image with only a warning, and libpng's
    # errors vary by version: check the file reaches its end marker before decoding.
    if data.startswith(_JPEG_MAGIC) and not _jpeg_is_complete(data):
        raise ImageReadError(path, "truncated JPEG (no end-of-image marker); re-download or re-export it")
    if data.startswith(_PNG_MAGIC) and not _png_is_complete(data):
        raise ImageReadError(path, "truncated PNG (no IEND chunk); re-download or re-export it")
    return np.frombuffer(data, dtype=np.uint8)


def _decode(path: Path, flags: int) -> np.ndarray:
    buffer = _read_bytes(path)
    try:
        decoded = cv2.imdecode(buffer, flags)
    except cv2.error as err:
        raise ImageReadError(path, f"OpenCV failed to decode it ({err.err})") from None
    if decoded is None:
        raise ImageReadError(path, "OpenCV cannot decode it (corrupt file or unsupported format)")
    return decoded


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        # round(v * 255 / 65535) == round(v / 257): 65535 -> 255 and 257 * k -> k exactly.
        return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if array.dtype in (np.float32, np.float64):
        return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ImageReadError(path, f"unsupported pixel type {array.dtype} (expected 8- or 16-bit)")


def _check_size(image: np.ndarray, path: Path) -> None:
    height, width = image.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise ImageSizeError(
            f"{path} is {height}x{width}: images must be at least {MIN_IMAGE_SIDE} px on each side "
            "(a smaller file is almost certainly broken; remove it from the dataset)"
        )


def read_image(path: str | Path, *, exif: bool = False) -> np.ndarray:
    """Read a colour image as RGB uint8.

    Args:
        path: the image file (JPEG, PNG, BMP, TIFF, WebP, ...).
        exif: rotate/flip by the EXIF orientation tag (predict path); training and evaluation keep the
            stored pixel order, as the official code (PIL) does.

    Returns:
        (H, W, 3) uint8 RGB array.

    Raises:
        ImageReadError: the file is missing, empty, truncated or cannot be decoded.
        ImageSizeError: a side is shorter than ``MIN_IMAGE_SIDE``.
    """
    path = Path(path)
    flags = _IMAGE_FLAGS & ~cv2.IMREAD_IGNORE_ORIENTATION if exif else _IMAGE_FLAGS
    image = _decode(path, flags)
    if image.ndim == 2:  # defensive: IMREAD_COLOR_RGB already expands grey to 3 channels
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    image = _to_uint8(image, path)
    _check_size(image, path)
    return image


# JPEG decoding at 1/2, 1/4, 1/8 of the size (libjpeg scales in the DCT: far less time and memory).
_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def read_image_reduced(
    path: str | Path, short_side: int, *, exif: bool = False
) -> tuple[np.ndarray, tuple[int, int]]:
    """Read a colour image at the smallest JPEG reduction whose short side still reaches ``short_side``.

    For a picture that is shrunk anyway (a 10000x10000 photo predicted at 1080 px): libjpeg decodes
    a JPEG at 1/2, 1/4 or 1/8 of its size straight from the DCT coefficients, without ever holding
    the whole image. Other formats, and JPEGs too small to reduce, are read whole
    (:func:`read_image`). The reduced pixels are libjpeg's box-filtered ones, not those of a resize
    of the whole image.

    Args:
        path: the image file.
        short_side: the short side (after EXIF orientation) the result must keep at least.
        exif: apply the EXIF orientation, as :func:`read_image`.

    Returns:
        (H', W', 3) uint8 RGB, and the (H, W) of the whole image (oriented like the result): the
        image was read whole when they are equal.

    Raises:
        ImageReadError, ImageSizeError: as :func:`read_image`.
    """
    path = Path(path)
    buffer = _read_bytes(path)
    sides = _jpeg_size(buffer.tobytes()) if buffer[:2].tobytes() == _JPEG_MAGIC else None
    factor = max((f for f in _REDUCED_FLAGS if sides and min(sides) // f >= short_side), default=1)
    if sides is None or factor == 1:
        image = read_image(path, exif=exif)
        return image, (image.shape[0], image.shape[1])
    flags = (_REDUCED_FLAGS[factor] & ~cv2.IMREAD_COLOR) | cv2.IMREAD_COLOR_RGB
    flags |= 0 if exif else cv2.IMREAD_IGNORE_ORIENTATION
    try:
        reduced = cv2.imdecode(buffer, flags)
    except cv2.error as err:
        raise ImageReadError(path, f"OpenCV failed to decode it ({err.err})") from None
    if reduced is None:
        raise ImageReadError(path, "OpenCV cannot decode it (corrupt file or unsupported format)")
    _check_size(reduced, path)
    height, width = sides
    turned = reduced.shape[:2] != (-(-height // factor), -(-width // factor))  # EXIF turned it by 90 degrees
    return reduced, ((width, height) if turned else (height, width))


_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn: not DHT, JPG, DAC


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's frame header (before EXIF orientation), None if it has none."""
    pos = 2
    while pos + 9 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in _JPEG_FRAME_MARKERS:
            return int.from_bytes(data[pos + 5 : pos + 7], "big"), int.from_bytes(
                data[pos + 7 : pos + 9], "big"
            )
        if marker == 0xFF:
            pos += 1
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def read_mask(
    path: str | Path, *, dtype: type[np.uint8] | type[np.float32] | type[np.float64] = np.uint8
) -> np.ndarray:
    """Read a single-channel map (alpha matte, trimap, face mask).

    Args:
        path: the mask file, normally an 8-bit grey PNG.
        dtype: ``np.uint8`` for 0..255 (16-bit files are rounded to 8 bits), or ``np.float32`` /
            ``np.float64`` for [0, 1] (16-bit files keep their precision). Evaluation uses float64, as
            the official ``mask / 255.``: Conn's thresholds are compared in float64, and
            ``float32(153 / 255)`` clears ``0.6000000000000001`` where the float64 value does not.

    Returns:
        (H, W) array of ``dtype``.

    Raises:
        ImageReadError: the file is missing, empty, truncated or cannot be decoded.
        ImageSizeError: a side is shorter than ``MIN_IMAGE_SIDE``.
    """
    path = Path(path)
    mask = _decode(path, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if mask.ndim == 3:
        # OpenCV stores BGR(A): index 2 is R, the official code's first channel (grey+alpha files
        # decode to B = G = R = grey, so this is the grey value).
        mask = np.ascontiguousarray(mask[:, :, 2] if mask.shape[2] >= 3 else mask[:, :, 0])
    _check_size(mask, path)
    if dtype == np.uint8:
        return _to_uint8(mask, path)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"read_mask: dtype must be np.uint8, np.float32 or np.float64, got {dtype}")
    if mask.dtype == np.uint8:
        return np.divide(mask, 255.0, dtype=dtype)
    if mask.dtype == np.uint16:
        return np.divide(mask, 65535.0, dtype=dtype)
    if mask.dtype in (np.float32, np.float64):
        return np.clip(mask, 0.0, 1.0).astype(dtype)
    raise ImageReadError(path, f"unsupported pixel type {mask.dtype} (expected 8- or 16-bit)")


def _read_array(path: Path, channels: int | None, what: str) -> np.ndarray:
    """Memory-map a uint8 ``.npy`` map, read-only: (H, W, channels), or (H, W) when ``channels`` is None."""
    if _read_head(path, len(_NPY_MAGIC), kind="a .npy file") != _NPY_MAGIC:
        raise ImageReadError(path, "not a .npy file (no NUMPY header); delete it and re-run src/prepare.py")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        # numpy maps the size the header announces; a shorter file fails here ("mmap length ...").
        truncated = "mmap length" in str(err) or isinstance(err, EOFError) or "EOF" in str(err)
        problem = "truncated .npy (shorter than its header says)" if truncated else f"corrupt .npy ({err})"
        raise ImageReadError(path, f"{problem}; delete it and re-run src/prepare.py") from None
    shape_ok = array.ndim == 2 if channels is None else array.ndim == 3 and array.shape[2] == channels
    if array.dtype != np.uint8 or not shape_ok:
        raise ImageReadError(
            path,
            f"holds a {array.dtype} array of shape {array.shape}; expected uint8 {what} "
            "(as src/prepare.py fg_bg_format=npy / pack=true writes)",
        )
    _check_size(array, path)
    if not array.flags.c_contiguous:  # Fortran order: OpenCV needs rows of contiguous pixels
        array = np.ascontiguousarray(array)
    return array


def read_rgb_array(path: str | Path) -> np.ndarray:
    """Memory-map a ``.npy`` file holding an (H, W, 3) uint8 RGB image, read-only.

    Nothing is read but the header until pixels are used: cropping the result and resizing the crop
    touches only the crop's rows. The array is read-only; copy it before writing into it.

    Args:
        path: the ``.npy`` file (``np.save`` of a C- or Fortran-ordered uint8 (H, W, 3) array).

    Returns:
        (H, W, 3) uint8 RGB array (a ``numpy.memmap`` when the file is C-ordered).

    Raises:
        ImageReadError: the file is missing, empty, not a ``.npy`` file, truncated, or holds another
            dtype or shape.
        ImageSizeError: a side is shorter than ``MIN_IMAGE_SIDE``.
    """
    return _read_array(Path(path), 3, "(H, W, 3) RGB")


def read_mask_array(path: str | Path) -> np.ndarray:
    """Memory-map a ``.npy`` file holding an (H, W) uint8 map (alpha 0..255, face mask 0/255), read-only.

    The packed training format (``src/prepare.py pack=true``) stores masks this way; see
    :func:`read_rgb_array` for what is read when.

    Raises:
        ImageReadError, ImageSizeError: as :func:`read_rgb_array`.
    """
    return _read_array(Path(path), None, "(H, W)")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read a colour map: ``.npy`` files with :func:`read_rgb_array`, anything else with :func:`read_image`.

    Raises:
        ImageReadError, ImageSizeError: as the reader used.
    """
    path = Path(path)
    return read_rgb_array(path) if path.suffix.lower() == ARRAY_SUFFIX else read_image(path)


def read_map(path: str | Path) -> np.ndarray:
    """Read a uint8 mask: ``.npy`` files with :func:`read_mask_array`, anything else with :func:`read_mask`.

    Raises:
        ImageReadError, ImageSizeError: as the reader used.
    """
    path = Path(path)
    return read_mask_array(path) if path.suffix.lower() == ARRAY_SUFFIX else read_mask(path)


def check_same_size(reference: tuple[Path, np.ndarray], others: Sequence[tuple[Path, np.ndarray]]) -> None:
    """Raise if any map's height and width differ from the reference image's.

    Only shapes are compared, so memory-mapped arrays (:func:`read_rgb_array`) are not read.

    Args:
        reference: (path, array) of the image the others must match.
        others: (path, array) pairs: alpha, fg, bg, trimap, face mask of the same sample.

    Raises:
        ImageSizeError: naming both files and both sizes.
    """
    ref_path, ref = reference
    for path, array in others:
        if array.shape[:2] != ref.shape[:2]:
            raise ImageSizeError(
                f"size mismatch: {path} is {array.shape[0]}x{array.shape[1]} but {ref_path} is "
                f"{ref.shape[0]}x{ref.shape[1]}; every map of a sample must have the image's size "
                "(fix or remove the pair; re-run src/prepare.py if fg/bg are stale)"
            )
