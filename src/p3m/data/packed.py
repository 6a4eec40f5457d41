"""The packed training format: every training map as an uncompressed uint8 array the dataset memory-maps.

``p3m prepare data.root=... pack=true`` (after the fg/bg step) writes, for every stem of
``train/<image_dir>``::

    train/packed/<image_dir>/<stem>.npy   (H, W, 3) RGB   the training image (blurred_image, ...)
    train/packed/mask/<stem>.npy          (H, W)          the alpha matte, 0..255
    train/packed/facemask/<stem>.npy      (H, W)          the face mask, when train/facemask exists
    train/packed/<fg dir>/<stem>.npy      (H, W, 3) RGB   fg and bg, unless train/<fg dir> and
    train/packed/bg/<stem>.npy                            train/bg already hold the stem's .npy
                                                          (fg_bg_format=npy): those are read as they are

The arrays hold exactly the pixels :mod:`p3m.data.io` decodes from the source files, so training
samples are bit-identical to those of the image files for the same random draws
(tests/data/test_packed.py); what changes is the cost: no JPEG/PNG decoding, and a crop reads only its
own rows of each map (:func:`p3m.data.io.read_rgb_array`). :class:`p3m.data.layout.P3M10kLayout`
reads a stem's packed array in place of the file of the same stem in the folder of the same name.

The rules:

- nothing outside ``train/packed/`` is written, and no source file is ever deleted or changed (so a
  synthetic root stays what its generator wrote; delete ``train/packed`` to undo);
- every array is written to a hidden temporary file and renamed into place, so an interrupted run
  leaves no half arrays, and a re-run packs only what is missing, unreadable or stale
  (``overwrite=true`` packs everything again);
- each array's source is recorded (``train/packed/.<folder>.p3m-sources.json``,
  :mod:`p3m.data.provenance`): training refuses an array whose source changed since, and a re-run
  packs it again;
- the maps of a stem must have the image's size; a stem that does not is listed as failed and gets
  no arrays.

Disk cost: H * W * 5 bytes per image (image, alpha, face mask), plus H * W * 6 for fg and bg when
they are not arrays yet; docs/performance.md gives the figure for P3M-10k.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from tqdm import tqdm

from p3m.data.fgbg import BG_DIR, PrepareSummary, fg_dir_for, write_map
from p3m.data.io import (
    ARRAY_SUFFIX,
    ImageReadError,
    ImageSizeError,
    read_image,
    read_mask,
    read_mask_array,
    read_rgb_array,
)
from p3m.data.layout import FG_BG_SUFFIXES, IMAGE_SUFFIXES, PACKED_DIR, index_folder
from p3m.data.provenance import (
    Freshness,
    Records,
    Sources,
    Updates,
    freshness,
    newer_source,
    record_results,
    refreshed,
    sources_of,
)
from p3m.utils.process_pool import default_workers, run_jobs

log = logging.getLogger(__name__)

# (reader of the source file, reader of a written array): colour maps and single-channel maps.
_READERS: dict[str, tuple[Callable[[Path], np.ndarray], Callable[[Path], np.ndarray]]] = {
    "rgb": (read_image, read_rgb_array),
    "mask": (read_mask, read_mask_array),
}


@dataclass(frozen=True)
class _Array:
    """One array to produce: ``source`` (an image file) -> ``path`` (``train/packed/<dir>/<stem>.npy``)."""

    source: Path
    path: Path
    kind: str  # key of _READERS


@dataclass(frozen=True)
class _PackJob:
    stem: str
    arrays: tuple[_Array, ...]  # the image first: the others must have its size
    overwrite: bool
    root: Path  # the dataset root, which records are relative to
    records: Mapping[Path, Sources | None]  # the recorded sources of the arrays and of their source files


def _done(array: _Array, job: _PackJob, updates: Updates) -> tuple[int, ...] | None:
    """The shape of an existing, readable and current array, else None; (re-)records it in ``updates``.

    Current: made from the source as it is now (:mod:`p3m.data.provenance`); an array without a
    record (an older p3m, or a run stopped before saving its record) must be newer than its source.
    """
    if job.overwrite or not array.path.is_file():
        return None
    try:
        shape = tuple(_READERS[array.kind][1](array.path).shape)
    except (ImageReadError, ImageSizeError):
        return None
    recorded = job.records.get(array.path)
    if recorded is None:
        if newer_source(array.path, [array.source]) is not None:
            return None
        updates[array.path] = _made_from(array, job)
        return shape
    verdict, _ = freshness(job.root, recorded, deep=True)
    if verdict is Freshness.TOUCHED:
        updates[array.path] = refreshed(job.root, recorded)
    return None if verdict is Freshness.STALE else shape


def _made_from(array: _Array, job: _PackJob) -> Sources:
    """The record of ``array``: its source, and what that source was made from (an estimated fg)."""
    return sources_of(job.root, [array.source], [job.records.get(array.source)])


def _pack_stem(job: _PackJob) -> tuple[str, str, str, Updates]:
    """Pack one stem; returns (stem, "converted" | "skipped" | "failed", reason, records). Never raises."""
    updates: Updates = {}
    try:
        shapes = {a.path: _done(a, job, updates) for a in job.arrays}
        pending = [a for a in job.arrays if shapes[a.path] is None]
        if not pending:
            return job.stem, "skipped", "", updates
        made_from = {a.path: _made_from(a, job) for a in pending}  # fingerprinted before they are read
        decoded = {a.path: _READERS[a.kind][0](a.source) for a in pending}
        # an array not decoded is done, so its shape is known
        known = cast(dict[Path, tuple[int, ...]], shapes)
        sizes = {a: (decoded[a.path].shape if a.path in decoded else known[a.path])[:2] for a in job.arrays}
        image = job.arrays[0]
        for array, size in sizes.items():
            if size != sizes[image]:
                raise ImageSizeError(
                    f"size mismatch: {array.source} is {size[0]}x{size[1]} but {image.source} is "
                    f"{sizes[image][0]}x{sizes[image][1]}; fix or remove the pair (nothing was packed for it)"
                )
        for array in pending:
            array.path.parent.mkdir(parents=True, exist_ok=True)
            write_map(array.path, decoded[array.path])
            updates[array.path] = made_from[array.path]
        return job.stem, "converted", "", updates
    except Exception as err:  # one bad stem must not stop a 10k-image batch; reported at the end
        expected = (ImageReadError, ImageSizeError)
        reason = str(err) if isinstance(err, expected) else f"{type(err).__name__}: {err}"
        return job.stem, "failed", reason, updates


def _sources(folder: Path, suffixes: frozenset[str], prefer: str | None = None) -> dict[str, Path]:
    return index_folder(folder, suffixes, prefer=prefer) if folder.is_dir() else {}


def _pack_jobs(root: Path, out: Path, image_dir: str, overwrite: bool, records: Records) -> list[_PackJob]:
    train, packed = root / "train", out / "train" / PACKED_DIR
    images_dir, masks_dir = train / image_dir, train / "mask"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise FileNotFoundError(
            f"cannot pack {root}: expected train/{image_dir}/ and train/mask/; set "
            "data.root=/path/to/P3M-10k (the folder holding train/), or image_dir=... to the images to pack"
        )
    images = _sources(images_dir, IMAGE_SUFFIXES)
    masks = _sources(masks_dir, IMAGE_SUFFIXES)
    facemasks = _sources(train / "facemask", IMAGE_SUFFIXES)
    colour: dict[str, dict[str, Path]] = {}
    for name in (fg_dir_for(image_dir), BG_DIR):
        # fg/bg written to output_root come first, those shipped under root second (as prepare_fg_bg)
        found = _sources(train / name, FG_BG_SUFFIXES, prefer=ARRAY_SUFFIX)
        found |= _sources(out / "train" / name, FG_BG_SUFFIXES, prefer=ARRAY_SUFFIX)
        colour[name] = found
    jobs = []
    for stem, image in images.items():
        arrays = [_Array(image, packed / image_dir / f"{stem}{ARRAY_SUFFIX}", "rgb")]
        if stem in masks:  # an image without a mask is the layout's error to report, not packing's
            arrays.append(_Array(masks[stem], packed / "mask" / f"{stem}{ARRAY_SUFFIX}", "mask"))
        if stem in facemasks:
            arrays.append(_Array(facemasks[stem], packed / "facemask" / f"{stem}{ARRAY_SUFFIX}", "mask"))
        for name, found in colour.items():
            source = found.get(stem)
            if source is not None and source.suffix.lower() != ARRAY_SUFFIX:  # arrays are read in place
                arrays.append(_Array(source, packed / name / f"{stem}{ARRAY_SUFFIX}", "rgb"))
        known = {path: records.get(path) for a in arrays for path in (a.path, a.source)}
        jobs.append(_PackJob(stem, tuple(arrays), overwrite, root, known))
    return jobs


def pack_training_set(
    root: str | os.PathLike[str],
    output_root: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    image_dir: str = "blurred_image",
    progress: bool = True,
) -> PrepareSummary:
    """Write the packed training format (see the module docstring) for a P3M-10k-layout training set.

    Args:
        root: dataset root holding ``train/<image_dir>/`` and ``train/mask/``.
        output_root: where ``train/packed/`` is written; None writes into ``root``.
        workers: processes; None -> ``default_workers()``; 1 runs in this process.
        overwrite: pack every stem again, not only those whose arrays are missing or unreadable.
        image_dir: the training images to pack (``blurred_image``; ``original_image`` for the
            non-anonymised images of datasets that have them); also picks the fg folder.
        progress: show a progress bar.

    Returns:
        Stems packed (``converted``), already packed (``skipped``) and failed (stem -> reason).

    Raises:
        FileNotFoundError: ``root`` lacks ``train/<image_dir>`` or ``train/mask``.
    """
    root = Path(root).expanduser()
    out = Path(output_root).expanduser() if output_root is not None else root
    records = Records()
    jobs = _pack_jobs(root, out, image_dir, overwrite, records)
    workers = min(default_workers() if workers is None else max(1, int(workers)), max(1, len(jobs)))
    target = out / "train" / PACKED_DIR
    log.info("Packing %d training images of %s into %s", len(jobs), root / "train", target)
    summary = PrepareSummary()
    results = tqdm(
        run_jobs(jobs, workers, _pack_stem), total=len(jobs), desc="pack", unit="img", disable=not progress
    )
    for stem, status, reason in record_results(results, records):
        if status == "failed":
            summary.failed[stem] = reason
        else:
            getattr(summary, status).append(stem)
    for stems in (summary.converted, summary.skipped):
        stems.sort()
    log.info(
        "pack: %d packed, %d skipped (already packed), %d failed",
        len(summary.converted),
        len(summary.skipped),
        len(summary.failed),
    )
    for stem, reason in sorted(summary.failed.items()):
        log.error("packing failed for %s: %s", stem, reason)
    return summary
