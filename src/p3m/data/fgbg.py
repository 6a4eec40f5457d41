"""Foreground/background estimation for P3M-10k, which ships images and alphas but no fg/bg.

The composition loss needs the colours of the foreground and the background behind every training
image. `estimate_fg_bg` solves for them with pymatting's multilevel foreground estimation
(Germer et al. 2020), and `prepare_fg_bg` runs it once over a training set:

    <root>/train/<image_dir>/<stem>.jpg + <root>/train/mask/<stem>.png
        -> <output_root or root>/train/fg_blurred/<stem>.png   (image_dir = blurred_image)
           <output_root or root>/train/fg/<stem>.png           (any other image_dir, e.g. original_image)
           <output_root or root>/train/bg/<stem>.png           (shared: an existing bg is kept)

Output format (``fg_bg_format``), both lossless:

- ``png`` (default; any reader opens it): zlib level 3 with the "up" filter, which decodes faster
  than cv2's default PNG settings at about the same size; lossless WebP would be half the size but
  takes longer to encode than the estimation itself.
- ``npy``: the uint8 (H, W, 3) RGB array, uncompressed (``<stem>.npy``). The training dataset
  memory-maps it (:func:`p3m.data.io.read_rgb_array`): no decoding, and a crop reads only its rows.
  The cost is disk: H * W * 3 bytes per map (BMP or uncompressed TIFF are as large and still need
  decoding).

The measured decode times, sizes and the disk P3M-10k needs are in docs/performance.md.

Which stems are done: in ``png`` format a readable fg (bg) of the stem in any format, in ``npy``
format only a readable ``.npy``; either must be current: what this step wrote is recorded with the
image and mask it was made from (:mod:`p3m.data.provenance`), and is estimated again once they
changed (an outdated ``.npy`` beside a PNG is removed, since training would read it first).
In ``npy`` format an existing image file of the stem (from an earlier ``png`` run, or fg/bg shipped
with a dataset) in the output folder, or else in ``root``'s, is re-encoded instead of estimated:
converting a prepared dataset is ``p3m prepare data.root=... fg_bg_format=npy``. The image files are
kept (delete them to get the disk back); where a stem has both, the dataset reads the ``.npy``.

pymatting compiles its numba kernels the first time they are used in an environment and caches them
next to the package: importing pymatting as a whole compiles every kernel it has, so only the
foreground module is loaded here.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from p3m.data.io import ARRAY_SUFFIX, ImageReadError, ImageSizeError, read_image, read_mask, read_rgb
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
from p3m.utils.conventions import IMAGE_SUFFIXES
from p3m.utils.docs import WHERE_TO_GET
from p3m.utils.files import encode_image, write_bytes_atomic
from p3m.utils.process_pool import default_workers, run_jobs

log = logging.getLogger(__name__)

FG_BG_FORMATS = ("png", "npy")  # values of fg_bg_format; see the module docstring
# fg/bg image files that the npy format converts, lossless ones first (used when a stem has several).
SOURCE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".webp", ".jpg", ".jpeg")
# PNG level 3 + "up" filter: see the module docstring for the measurements behind it.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 3, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
BG_DIR = "bg"

Estimator = Callable[..., tuple[np.ndarray, np.ndarray]]


def fg_dir_for(image_dir: str) -> str:
    """Where the foreground of `train/<image_dir>` goes: `fg_blurred` for blurred images, else `fg`."""
    return "fg_blurred" if image_dir == "blurred_image" else "fg"


@cache
def _ml_estimator() -> Estimator:
    """pymatting's `estimate_foreground_ml`, loaded without pymatting's package `__init__`.

    `import pymatting` imports every submodule, and their eagerly typed numba kernels compile (or load
    from cache) at import. The foreground module depends only on numpy and numba, so it is loaded on
    its own from the installed package; if that ever fails (a new pymatting layout), the public import
    is used instead.
    """
    spec = importlib.util.find_spec("pymatting")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "foreground" / "estimate_foreground_ml.py"
        try:
            module_spec = importlib.util.spec_from_file_location("_p3m_pymatting_fg_ml", path)
            if module_spec is None or module_spec.loader is None:
                raise ImportError(path)
            module = importlib.util.module_from_spec(module_spec)
            # numba's on-disk cache records the kernels' module by name: an unregistered module is
            # saved as '<dynamic>', which no later process can import back
            sys.modules[module_spec.name] = module
            module_spec.loader.exec_module(module)
            return module.estimate_foreground_ml
        except Exception as err:  # any failure here only costs compile time: fall back
            log.debug(
                "Loading pymatting's foreground module on its own failed (%s); importing pymatting", err
            )
    from pymatting import estimate_foreground_ml

    return estimate_foreground_ml


def estimate_fg_bg(image: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Estimate the foreground and background colours of an image from its alpha matte.

    Where 0 < alpha < 1 the result satisfies `image ≈ alpha * fg + (1 - alpha) * bg`; elsewhere fg
    (resp. bg) is a smooth extrapolation. The first call in a fresh environment compiles pymatting's
    numba kernels (seconds; cached afterwards).

    Args:
        image: (H, W, 3) uint8 RGB image.
        alpha: (H, W) or (H, W, 1) uint8 alpha matte, 0..255.

    Returns:
        (fg, bg): two (H, W, 3) uint8 RGB images.

    Raises:
        ValueError: wrong dtype or shape, or the image and alpha sizes differ.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    if alpha.ndim == 3 and alpha.shape[2] == 1:
        alpha = alpha[..., 0]
    if alpha.dtype != np.uint8 or alpha.ndim != 2:
        raise ValueError(f"alpha must be (H, W) uint8, got {alpha.shape} {alpha.dtype}")
    if alpha.shape != image.shape[:2]:
        raise ValueError(f"image {image.shape[:2]} and alpha {alpha.shape} differ in size")
    scale = np.float32(1.0 / 255.0)
    fg, bg = _ml_estimator()(
        image.astype(np.float32) * scale, alpha.astype(np.float32) * scale, return_background=True
    )
    return _to_uint8(fg), _to_uint8(bg)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Batch preparation
# --------------------------------------------------------------------------------------------------


class _BadInputError(ValueError):
    """An input that cannot be used; its message says which file and why."""


@dataclass(frozen=True)
class _Output:
    """One file to produce: the fg or the bg of a stem.

    Attributes:
        path: the file written, ``<dir>/<stem>.png`` or ``.npy``.
        present: files that already serve as this output if one of them reads (``path`` first).
        source: an existing image file to re-encode instead of estimating (``npy`` format).
        replaces: the stem's ``.npy`` in the folder (made by an earlier ``npy`` run), removed when
            ``overwrite`` rewrites ``path`` as PNG: the dataset would read it instead of the new PNG.
        clashes: the stem's other image files in the folder (e.g. shipped with the dataset): never
            deleted, so ``overwrite`` in ``png`` format refuses the stem rather than write a second one.
    """

    path: Path
    present: tuple[Path, ...]
    source: Path | None = None
    replaces: tuple[Path, ...] = ()
    clashes: tuple[Path, ...] = ()


@dataclass(frozen=True)
class _Job:
    stem: str
    image: Path
    mask: Path | None
    fg: _Output
    bg: _Output
    overwrite: bool
    root: Path  # the dataset root, which records are relative to
    records: Mapping[Path, Sources | None]  # the recorded sources of the outputs and conversion sources

    def made_from(self) -> list[Path]:
        """The files an estimate reads."""
        return [self.image] if self.mask is None else [self.image, self.mask]


@dataclass
class PrepareSummary:
    """What `prepare_fg_bg` did.

    Attributes:
        written: stems whose fg and/or bg were estimated and (re)written.
        converted: stems whose missing fg/bg were only re-encoded from existing files (``npy``).
        skipped: stems whose fg and bg already existed and were readable.
        failed: stem -> reason, for images that could not be used (unreadable, no mask, ...).
    """

    written: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no image failed."""
        return not self.failed


def _readable(path: Path) -> bool:
    """True if `path` reads completely (existence alone does not prove a file is whole).

    A ``.npy`` is checked from its header and size (:func:`read_rgb_array`), an image is decoded.
    """
    if not path.is_file():
        return False
    try:
        read_rgb(path)
    except (ImageReadError, ImageSizeError):
        return False
    return True


def _encode(path: Path, rgb: np.ndarray) -> bytes | memoryview:
    """The bytes of `rgb` in the format of `path`'s suffix (``.npy`` or ``.png``)."""
    if path.suffix == ARRAY_SUFFIX:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(rgb, dtype=np.uint8), allow_pickle=False)
        return buffer.getbuffer()
    return encode_image(path.with_suffix(".png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), PNG_PARAMS)


def write_map(path: Path, rgb: np.ndarray) -> None:
    """Encode, then write through a temporary file and a rename: readers never see half a file."""
    write_bytes_atomic(path, _encode(path, rgb))


def _read_source(source: Path, key: str, image: Path, size: tuple[int, int]) -> np.ndarray:
    """An existing fg/bg image to convert, checked against the training image's size."""
    redo = "delete it (or set overwrite=true) to estimate a new one"
    try:
        rgb = read_image(source)
    except (ImageReadError, ImageSizeError) as err:
        raise _BadInputError(f"{err} (the existing {key} to convert; {redo})") from None
    if rgb.shape[:2] != size:
        raise _BadInputError(
            f"the existing {key} {source} is {rgb.shape[:2]} but its image {image} is {size}; {redo}"
        )
    return rgb


def _current(job: _Job, path: Path, updates: Updates) -> bool:
    """Whether an existing output may stay (:mod:`p3m.data.provenance`); records it in ``updates``.

    Recorded: its sources must be unchanged (same bytes; new times are re-recorded). Unrecorded
    image files may have come with the dataset and stay; an unrecorded ``.npy`` (an older p3m, or a
    run stopped before its record was saved) stays only if it is newer than the image and mask.
    """
    sources = job.records.get(path)
    if sources is not None:
        verdict, _ = freshness(job.root, sources, deep=True)
        if verdict is Freshness.TOUCHED:
            updates[path] = refreshed(job.root, sources)
        return verdict is not Freshness.STALE
    if path.suffix != ARRAY_SUFFIX:
        return True
    if newer_source(path, job.made_from()) is not None:
        return False
    updates[path] = sources_of(job.root, job.made_from())
    return True


def _usable_source(job: _Job, source: Path | None) -> bool:
    """An fg/bg file to convert: not one prepare estimated from an image or mask that changed since."""
    if source is None:
        return False
    recorded = job.records.get(source)
    return recorded is None or freshness(job.root, recorded, deep=True)[0] is not Freshness.STALE


def _remove(paths: list[Path], updates: Updates) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
        updates[path] = None


def _run_job(job: _Job) -> tuple[str, str, str, Updates]:
    """Prepare one stem; returns (stem, "written" | "converted" | "skipped" | "failed", reason, records).

    Never raises.
    """
    updates: Updates = {}
    try:
        pending: dict[str, _Output] = {}
        outdated: list[Path] = []
        for key, out in (("fg", job.fg), ("bg", job.bg)):
            serving = [p for p in out.present if _readable(p)]
            current = [p for p in serving if job.overwrite or _current(job, p, updates)]
            outdated += [p for p in serving if p not in current]
            if job.overwrite or not current:
                pending[key] = out
            else:  # a current PNG stays; an outdated .npy beside it would be read instead
                _remove([p for p in out.replaces if p in outdated], updates)
        if not pending:
            return job.stem, "skipped", "", updates
        for key, out in pending.items():
            if job.overwrite and out.clashes:
                raise _BadInputError(
                    f"overwrite=true would write {out.path} beside the existing {key} {out.clashes[0]} "
                    "(two files for one stem); move that file away first (it is not deleted)"
                )
        estimate = [
            key for key, out in pending.items() if job.overwrite or not _usable_source(job, out.source)
        ]
        made_from = sources_of(job.root, job.made_from()) if estimate and job.mask is not None else None
        image = read_image(job.image)
        estimated: dict[str, np.ndarray] = {}
        if estimate:
            if job.mask is None:
                raise _BadInputError(f"no mask for {job.image} (expected train/mask/{job.stem}.png)")
            alpha = read_mask(job.mask)
            if alpha.shape != image.shape[:2]:
                raise _BadInputError(
                    f"{job.image} is {image.shape[:2]} but its mask {job.mask} is {alpha.shape}"
                )
            estimated = dict(zip(("fg", "bg"), estimate_fg_bg(image, alpha), strict=True))
        for key, out in pending.items():
            if key in estimate:
                rgb, sources = estimated[key], made_from
            else:  # keep an existing layer even when the other one has to be estimated
                assert out.source is not None  # pending without estimation means a source exists
                sources = sources_of(job.root, [out.source], [job.records.get(out.source)])
                rgb = _read_source(out.source, key, job.image, image.shape[:2])
            write_map(out.path, rgb)
            updates[out.path] = sources
            # a .npy of the stem would be read instead of the new PNG: an outdated one goes (overwrite: any)
            _remove([p for p in out.replaces if job.overwrite or p in outdated], updates)
        return job.stem, "written" if estimate else "converted", "", updates
    except Exception as err:  # one bad image must not stop a 10k-image batch; reported at the end
        expected = (_BadInputError, ImageReadError, ImageSizeError)
        reason = str(err) if isinstance(err, expected) else f"{type(err).__name__}: {err}"
        return job.stem, "failed", reason, updates


def _stem_files(folder: Path) -> dict[str, list[Path]]:
    """stem -> the fg/bg files (images and ``.npy``) of that stem in `folder`; hidden files ignored."""
    files: dict[str, list[Path]] = {}
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            suffix = path.suffix.lower()
            if not path.name.startswith(".") and (suffix in SOURCE_SUFFIXES or suffix == ARRAY_SUFFIX):
                files.setdefault(path.stem, []).append(path)
    return files


def _source(candidates: list[Path]) -> Path | None:
    """The image file to convert among a stem's files: lossless formats first."""
    images = [p for p in candidates if p.suffix.lower() in SOURCE_SUFFIXES]
    return min(images, key=lambda p: SOURCE_SUFFIXES.index(p.suffix.lower()), default=None)


def _output(
    path: Path, existing: dict[str, list[Path]], fallback: dict[str, list[Path]], fmt: str
) -> _Output:
    """What to produce at `path` (one stem's fg or bg; see :class:`_Output`).

    Args:
        path: the file to write.
        existing: stem -> files in the output folder.
        fallback: stem -> files in the same folder under the dataset root (empty if it is the same).
        fmt: ``png`` or ``npy``.
    """
    others = tuple(p for p in existing.get(path.stem, ()) if p != path)
    if fmt == "png":
        arrays = tuple(p for p in others if p.suffix == ARRAY_SUFFIX)
        images = tuple(p for p in others if p.suffix != ARRAY_SUFFIX)
        return _Output(path, present=(path, *others), replaces=arrays, clashes=images)
    source = _source(list(others)) or _source(fallback.get(path.stem, []))
    return _Output(path, present=(path,), source=source)


def _jobs(root: Path, out: Path, image_dir: str, overwrite: bool, fmt: str, records: Records) -> list[_Job]:
    images_dir, masks_dir = root / "train" / image_dir, root / "train" / "mask"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        found = sorted(p.name for p in (root / "train").iterdir()) if (root / "train").is_dir() else []
        raise FileNotFoundError(
            f"P3M-10k training data not found at {root}: expected train/{image_dir}/*.jpg and "
            f"train/mask/*.png (train/ holds {found or 'nothing'}). Set data.root=/path/to/P3M-10k "
            f"(the folder that contains train/), or image_dir=... to the images to prepare ({WHERE_TO_GET})."
        )
    folders = {"fg": fg_dir_for(image_dir), "bg": BG_DIR}
    existing: dict[str, dict[str, list[Path]]] = {}
    fallback: dict[str, dict[str, list[Path]]] = {}
    for key, name in folders.items():
        (out / "train" / name).mkdir(parents=True, exist_ok=True)
        existing[key] = _stem_files(out / "train" / name)
        # npy conversion also reads fg/bg shipped in the dataset itself when writing elsewhere.
        same = (root / "train" / name).resolve() == (out / "train" / name).resolve()
        fallback[key] = {} if fmt == "png" or same else _stem_files(root / "train" / name)
    jobs = []
    for image in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        if image.name.startswith("."):
            continue
        mask = masks_dir / f"{image.stem}.png"
        outputs = {
            key: _output(out / "train" / name / f"{image.stem}.{fmt}", existing[key], fallback[key], fmt)
            for key, name in folders.items()
        }
        known = [p for o in outputs.values() for p in (*o.present, o.source) if p is not None]
        jobs.append(
            _Job(
                image.stem,
                image,
                mask if mask.is_file() else None,
                outputs["fg"],
                outputs["bg"],
                overwrite,
                root,
                {path: records.get(path) for path in known},
            )
        )
    return jobs


def prepare_fg_bg(
    root: str | os.PathLike[str],
    output_root: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    image_dir: str = "blurred_image",
    progress: bool = True,
    fg_bg_format: str = "png",
) -> PrepareSummary:
    """Estimate (or convert) and write fg/bg for every training image of a P3M-10k-layout dataset.

    Resumable: a stem whose fg and bg exist and read is skipped (unless `overwrite`), and files are
    written through a temporary file and a rename, so an interrupted run leaves no partial outputs.
    In ``npy`` format a missing ``.npy`` whose stem has an image file already is converted from it,
    not estimated (see the module docstring). Images that cannot be used are skipped and listed in
    the summary (and logged) at the end; they do not stop the batch.

    Args:
        root: dataset root holding `train/<image_dir>/` and `train/mask/`.
        output_root: where `train/<fg dir>/` and `train/bg/` are written; None writes into `root`.
        workers: processes; None -> `default_workers()`; 1 runs in this process.
        overwrite: estimate again even when outputs exist (no conversion); in ``png`` format the
            stem's other fg/bg files in the output folder (``.npy``, other image types) are removed,
            since they would be read instead of, or clash with, the new PNG.
        image_dir: training image folder; `blurred_image` writes `fg_blurred/`, anything else (e.g.
            `original_image`) writes `fg/`. `bg/` is shared, and an existing bg is kept.
        progress: show a progress bar.
        fg_bg_format: ``png`` (lossless PNG) or ``npy`` (uncompressed arrays, memory-mapped by the
            training dataset: no decoding, more disk).

    Returns:
        What was written, converted, skipped and failed.

    Raises:
        FileNotFoundError: `root` does not have the expected training folders.
        ImportError: pymatting is not installed.
        ValueError: unknown `fg_bg_format`.
    """
    if fg_bg_format not in FG_BG_FORMATS:
        choices = ", ".join(FG_BG_FORMATS)
        raise ValueError(f"fg_bg_format={fg_bg_format!r} is unknown; choose one of {choices}")
    root = Path(root).expanduser()
    out = Path(output_root).expanduser() if output_root is not None else root
    if importlib.util.find_spec("pymatting") is None:  # fail once here, not once per image
        raise ImportError("fg/bg estimation needs pymatting: pip install 'pymatting>=1.1.12'")
    records = Records()
    jobs = _jobs(root, out, image_dir, overwrite, fg_bg_format, records)
    workers = default_workers() if workers is None else max(1, int(workers))
    workers = min(workers, max(1, len(jobs)))
    log.info(
        "Preparing fg/bg (%s) for %d images in %s -> %s (%d worker%s)",
        fg_bg_format,
        len(jobs),
        root / "train" / image_dir,
        out / "train",
        workers,
        "" if workers == 1 else "s",
    )
    summary = PrepareSummary()
    results = tqdm(
        run_jobs(jobs, workers, _run_job), total=len(jobs), desc="fg/bg", unit="img", disable=not progress
    )
    for stem, status, reason in record_results(results, records):
        if status == "failed":
            summary.failed[stem] = reason
        else:
            getattr(summary, status).append(stem)
    for stems in (summary.written, summary.converted, summary.skipped):
        stems.sort()
    log.info(
        "fg/bg: %d estimated, %d converted from existing files, %d skipped (already done), %d failed",
        len(summary.written),
        len(summary.converted),
        len(summary.skipped),
        len(summary.failed),
    )
    for stem, reason in sorted(summary.failed.items()):
        log.error("fg/bg failed for %s: %s", stem, reason)
    return summary
