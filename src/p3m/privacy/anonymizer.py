"""Anonymize a folder of portraits offline: detect faces, obfuscate them, write a P3M-style folder.

Output layout (P3M-10k's names)::

    <output>/blurred_image/<stem>.png    the obfuscated images (png: only face pixels change)
    <output>/facemask/<stem>.png         the face masks, 0/255
    <output>/mask/<alpha file>           the alpha mattes, copied byte for byte (with alpha_dir only)
    <output>/anonymize_report.json       settings, no-face list, failures, scores, detection times

Per image: read with the project's reader (:func:`p3m.data.io.read_image`: EXIF orientation applied,
grey and RGBA converted to 3 channels, truncated files refused); detect faces on the RGB image; the
face mask is the union of one ellipse (or box, ``mask_shape``) per detection, the box enlarged by
``margin``; with an alpha matte the mask is limited to the person (``alpha > 0``), so it follows the
face outline against the background like P3M-10k's masks, and the obfuscated region is that mask
minus the alpha transition band (:func:`p3m.privacy.obfuscate.obfuscate_face`). Images with no face
found are written unchanged (or left out with ``keep_no_face=False``) and listed in the report;
check them by eye, since a missed face is a privacy leak. Unreadable images, and images whose alpha
matte is missing, unreadable or of another size, are reported as failures and not written.

Before anything is written, outputs that would replace an input are refused, and so are existing
outputs unless ``overwrite=True`` (:func:`p3m.utils.files.check_outputs`). Alpha mattes that are
already in ``<output>/mask`` (``output=`` a P3M split folder, ``alpha_dir=<split>/mask``) stay as they
are. Every file is written through a temporary file and a rename.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from tqdm import tqdm

from p3m.data.io import read_image, read_mask
from p3m.privacy.detectors.base import FaceDetection, FaceDetector
from p3m.privacy.detectors.masks import MaskShape, face_mask_from_detections
from p3m.privacy.detectors.registry import create_detector
from p3m.privacy.obfuscate import FaceObfuscator, ObfuscationMethod
from p3m.utils.conventions import IMAGE_SUFFIXES, KERNEL_AT_1080, kernel_for_size
from p3m.utils.errors import MissingInputError, SettingError
from p3m.utils.files import check_outputs, write_bytes_atomic, write_image

log = logging.getLogger(__name__)

REPORT_NAME = "anonymize_report.json"


@dataclass
class AnonymizeReport:
    """What :func:`anonymize_folder` did; written as ``anonymize_report.json``.

    Attributes:
        settings: The options of the run (method, detector, threshold, ...).
        written: Stems of the images written to ``blurred_image/``.
        no_face: Stems of the images in which no face was found.
        failures: ``{file name: reason}`` for images that were skipped.
        scores: ``{stem: [score of each detection, best first]}``.
        detect_seconds: ``{stem: seconds spent in the detector}``.
    """

    settings: dict[str, Any] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    scores: dict[str, list[float]] = field(default_factory=dict)
    detect_seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """A few human-readable lines: counts, no-face list, failures, detection time."""
        times = list(self.detect_seconds.values())
        with_face = len(self.scores) - len(self.no_face)
        lines = [
            f"anonymized {len(self.written)} image(s); faces found in {with_face}, "
            f"none in {len(self.no_face)}; {len(self.failures)} failure(s)"
        ]
        if times:
            lines.append(
                f"detection: median {statistics.median(times) * 1000:.0f} ms/image "
                f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"
            )
        if self.no_face:
            lines.append("no face found (check by eye): " + ", ".join(self.no_face))
        lines += [f"FAILED {name}: {reason}" for name, reason in self.failures.items()]
        return "\n".join(lines)

    def write(self, path: Path) -> None:
        """Write the report as JSON (with a summary of the detection times)."""
        data = asdict(self)
        times = list(self.detect_seconds.values())
        data["detect_seconds_median"] = statistics.median(times) if times else None
        write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def obfuscate_detections(
    image_rgb: np.ndarray,
    detections: list[FaceDetection],
    obfuscator: FaceObfuscator,
    *,
    alpha: np.ndarray | None = None,
    margin: float = 0.15,
    mask_shape: MaskShape = "ellipse",
) -> tuple[np.ndarray, np.ndarray]:
    """Build the face mask of ``detections`` and obfuscate it in an RGB (or BGR) uint8 image.

    With ``alpha`` the mask is limited to the person (``alpha > 0``) and the transition band is
    left untouched.

    Returns:
        The obfuscated image and the face mask (uint8 0/255).
    """
    facemask = face_mask_from_detections(detections, image_rgb.shape[:2], margin=margin, shape=mask_shape)
    if alpha is not None:
        facemask[alpha == 0] = 0
    return obfuscator(image_rgb, facemask, alpha=alpha), facemask


IMAGE_FORMATS = ("png", "jpg")  # values of image_format


def check_inputs(input_dir: str | Path, alpha_dir: str | Path | None, image_format: str = "png") -> None:
    """Refuse missing input folders and an unknown output format (before a detector is loaded).

    Raises:
        MissingInputError: ``input_dir`` or ``alpha_dir`` is not a folder.
        SettingError: ``image_format`` is not png or jpg.
    """
    if not Path(input_dir).is_dir():
        raise MissingInputError(f"input folder {input_dir} does not exist (set input=DIR)")
    if alpha_dir is not None and not Path(alpha_dir).is_dir():
        raise MissingInputError(
            f"alpha folder {alpha_dir} does not exist (set alpha_dir=DIR or alpha_dir=null)"
        )
    if image_format not in IMAGE_FORMATS:
        raise SettingError(f"image_format={image_format}: expected one of {' | '.join(IMAGE_FORMATS)}")


def anonymize_folder(
    input_dir: str | Path,
    output_dir: str | Path,
    detector: FaceDetector,
    obfuscator: FaceObfuscator,
    *,
    alpha_dir: str | Path | None = None,
    margin: float = 0.15,
    mask_shape: MaskShape = "ellipse",
    image_format: Literal["png", "jpg"] = "png",
    jpeg_quality: int = 95,
    keep_no_face: bool = True,
    progress: bool = True,
    settings: dict[str, Any] | None = None,
    overwrite: bool = False,
    exif: bool = True,
) -> AnonymizeReport:
    """Anonymize every image directly inside ``input_dir`` into a P3M-style ``output_dir``.

    Args:
        input_dir: Folder of images (not searched recursively).
        output_dir: Receives ``blurred_image/``, ``facemask/``, ``mask/`` (with alphas) and the report.
        detector: Any registered face detector (see :mod:`p3m.privacy.detectors`).
        obfuscator: Method and strength of the obfuscation.
        alpha_dir: Folder of alpha mattes named like the images (any image suffix, e.g. P3M's
            ``mask/<stem>.png``); the transition band is then left untouched.
        margin: Enlargement of each detected box per side, as a fraction of its size.
        mask_shape: ``ellipse`` or ``box``.
        image_format: ``png`` (lossless: pixels outside the face stay bit-identical) or ``jpg``
            (smaller, like P3M-10k, but every pixel is re-encoded).
        jpeg_quality: JPEG quality for ``image_format=jpg``.
        keep_no_face: Write images with no face found unchanged (True) or leave them out.
        progress: Show a progress bar.
        settings: Recorded in the report as is.
        overwrite: Replace existing output files (never an input).
        exif: Apply the EXIF orientation, as photo viewers do (False: the stored pixel order, as the
            training and evaluation readers keep it, so the outputs line up with their labels).

    Returns:
        The report, also written to ``output_dir/anonymize_report.json``.

    Raises:
        MissingInputError: ``input_dir`` or ``alpha_dir`` is not a folder.
        SettingError: Bad ``image_format``.
        UserError: an output would replace an input, or (without ``overwrite``) an existing file.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    check_inputs(input_dir, alpha_dir, image_format)
    alphas = _index_by_stem(_image_files(Path(alpha_dir))) if alpha_dir is not None else None
    alpha_files = alphas or {}

    report = AnonymizeReport(settings=dict(settings or {}))
    files = _image_files(input_dir)
    if not files:
        log.warning("no images (%s) in %s", ", ".join(IMAGE_SUFFIXES), input_dir)
    out_images, out_masks = output_dir / "blurred_image", output_dir / "facemask"
    # output= the split folder with alpha_dir=<split>/mask: the mattes are already where they would go.
    copy_alphas = alpha_dir is not None and not _same_folder(Path(alpha_dir), output_dir / "mask")
    planned = [output_dir / REPORT_NAME]
    for stem in dict.fromkeys(p.stem for p in files):
        planned += [out_images / f"{stem}.{image_format}", out_masks / f"{stem}.png"]
        if copy_alphas and stem in alpha_files:
            planned.append(output_dir / "mask" / alpha_files[stem].name)
    check_outputs(planned, [*files, *alpha_files.values()], overwrite=overwrite)
    out_images.mkdir(parents=True, exist_ok=True)
    out_masks.mkdir(parents=True, exist_ok=True)
    if copy_alphas:
        (output_dir / "mask").mkdir(exist_ok=True)
    write_params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if image_format == "jpg" else []

    seen: dict[str, str] = {}
    for path in tqdm(files, desc="anonymize", unit="img", disable=not progress):
        stem = path.stem
        if stem in seen:
            report.failures[path.name] = f"same name as {seen[stem]}: outputs would collide"
            continue
        seen[stem] = path.name
        try:
            rgb = read_image(path, exif=exif)  # refuses truncated files, which cv2.imread pads with grey
            bgr = np.ascontiguousarray(rgb[:, :, ::-1])
            alpha = None
            if alphas is not None:
                alpha = _read_alpha(alphas.get(stem), stem, bgr.shape[:2])
            start = time.perf_counter()
            detections = detector.detect(rgb)
            report.detect_seconds[stem] = time.perf_counter() - start
            # The obfuscation treats channels alike, so it runs on the BGR array that gets written.
            obfuscated, facemask = obfuscate_detections(
                bgr, detections, obfuscator, alpha=alpha, margin=margin, mask_shape=mask_shape
            )
            report.scores[stem] = [round(d.score, 4) for d in detections]
            if not detections:
                report.no_face.append(stem)
                if not keep_no_face:
                    continue
            write_image(out_images / f"{stem}.{image_format}", obfuscated, write_params)
            write_image(out_masks / f"{stem}.png", facemask)
            if copy_alphas:
                write_bytes_atomic(
                    output_dir / "mask" / alpha_files[stem].name, alpha_files[stem].read_bytes()
                )
            report.written.append(stem)
        except (OSError, ValueError, cv2.error) as err:
            report.failures[path.name] = str(err)
    report.write(output_dir / REPORT_NAME)
    return report


@dataclass
class Anonymizer:
    """:func:`anonymize_folder` from plain settings, the detector built when it first runs.

    ``data=folder`` calls it on the training images when the privacy mode reads face-blurred images
    (conf/data/folder.yaml, ``data.anonymizer``); the keys are those of ``p3m anonymize``, except that
    ``band_kernel=None`` scales the official 25 px (at a 1080 px short side) to each image, as the
    training privacy modes do, so that small pictures are not left unblurred by a band wider than the face.
    """

    detector: str = "centerface"
    threshold: float = 0.4
    detector_kwargs: dict[str, Any] = field(default_factory=dict)
    method: ObfuscationMethod = "blur"
    blur_sigma: float = 0.25
    mosaic_block: float = 0.125
    band_kernel: int | None = None
    opaque_alpha: int = 255
    margin: float = 0.15
    mask_shape: MaskShape = "ellipse"

    def __call__(self, input_dir: Path, output_dir: Path, alpha_dir: Path | None = None) -> AnonymizeReport:
        """Anonymize ``input_dir`` into ``output_dir`` (PNG, stored pixel order, faces not found kept)."""
        detector = create_detector(self.detector, threshold=self.threshold, **dict(self.detector_kwargs))
        obfuscator = FaceObfuscator(
            method=self.method,
            blur_sigma=self.blur_sigma,
            mosaic_block=self.mosaic_block,
            band_kernel=self.band_kernel or KERNEL_AT_1080,
            opaque_alpha=self.opaque_alpha,
        )
        return anonymize_folder(
            input_dir,
            output_dir,
            detector,
            obfuscator if self.band_kernel else _ScaledBand(obfuscator),  # type: ignore[arg-type]  # duck-typed: __call__ as FaceObfuscator's
            alpha_dir=alpha_dir,
            margin=self.margin,
            mask_shape=self.mask_shape,
            progress=False,
            settings=asdict(self),
            exif=False,
        )


@dataclass(frozen=True)
class _ScaledBand:
    """A face obfuscator whose transition band is scaled to each image (``kernel_for_size``)."""

    obfuscator: FaceObfuscator

    def __call__(
        self, image: np.ndarray, facemask: np.ndarray, alpha: np.ndarray | None = None
    ) -> np.ndarray:
        kernel = kernel_for_size(*image.shape[:2])
        return dataclasses.replace(self.obfuscator, band_kernel=kernel)(image, facemask, alpha=alpha)


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _index_by_stem(files: Iterable[Path]) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in files:
        index.setdefault(path.stem, path)  # files come sorted, so the choice is reproducible
    return index


def _read_alpha(path: Path | None, stem: str, hw: tuple[int, int]) -> np.ndarray:
    if path is None:
        raise ValueError(f"no alpha matte named {stem}.* in alpha_dir")
    alpha = read_mask(path)
    if alpha.shape != tuple(hw):
        raise ValueError(f"alpha matte {path.name} is {alpha.shape}, the image is {tuple(hw)}")
    return alpha


def _same_folder(a: Path, b: Path) -> bool:
    return a.is_dir() and b.is_dir() and a.samefile(b)
