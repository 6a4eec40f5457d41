"""Foreground/background estimation for P3M-10k, which ships images and alphas but no fg/bg.

The composition loss needs the colours of the foreground and the background behind every training
image. `estimate_fg_bg` solves for them with pymatting's multilevel foreground estimation
(Germer et al. 2020), and `prepare_fg_bg` runs it once over a training set:

    <root>/train/<image_dir>/<stem>.jpg + <root>/train/mask/<stem>.png
        -> <output_root or root>/train/fg_blurred/<stem>.png   (image_dir = blurred_image)
           <output_root or root>/train/fg/<stem>.png           (any other image_dir, e.g. original_image)
           <output_root or root>/train/bg/<stem>.png           (shared: an existing bg is kept)

Output format: PNG (lossless; any reader opens it), zlib level 3 with the "up" filter. On a 1080p
estimated fg/bg (p3m_samples), cv2 decodes it in ~17-20 ms against ~27-31 ms with cv2's default PNG
settings, at about the same size (1.1-1.3 MB). BMP or uncompressed TIFF decode in 3-6 ms but take
6.2 MB per image (~120 GB for fg+bg of P3M-10k); lossless WebP is half the size and decodes in ~16 ms
but takes ~0.7 s to encode each file, more than the estimation itself.

pymatting compiles its numba kernels the first time they are used in an environment and caches them
next to the package: importing pymatting as a whole compiles every kernel it has (about a minute on a
busy 2-core machine), so only the foreground module is loaded here (~6 s when cold, ~1 s once cached).
Estimation then costs ~0.3 s of CPU per 1080p image (~0.4 s with decoding and both PNG writes).
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from src.data.io import ImageReadError, ImageSizeError, read_image, read_mask

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
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
class _Job:
    stem: str
    image: Path
    mask: Path | None
    fg: Path
    bg: Path
    overwrite: bool


@dataclass
class PrepareSummary:
    """What `prepare_fg_bg` did.

    Attributes:
        written: stems whose fg and/or bg were (re)written.
        skipped: stems whose fg and bg already existed and were readable.
        failed: stem -> reason, for images that could not be used (unreadable, no mask, ...).
    """

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no image failed."""
        return not self.failed


def _readable(path: Path) -> bool:
    """True if `path` decodes completely (existence alone does not prove a file is whole)."""
    if not path.is_file():
        return False
    try:
        read_image(path)
    except (ImageReadError, ImageSizeError):
        return False
    return True


def _write_png_atomic(path: Path, rgb: np.ndarray) -> None:
    """Encode to a hidden temporary file beside `path`, then rename: readers never see half a file."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), PNG_PARAMS)
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    # Hidden and not *.png, so dataset listings never pick it up; os.open (not mkstemp, which makes
    # 0600 files) lets the umask set the permissions as for any other output.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            f.write(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _run_job(job: _Job) -> tuple[str, str, str]:
    """Prepare one stem; returns (stem, "written" | "skipped" | "failed", reason). Never raises."""
    try:
        need_fg = job.overwrite or not _readable(job.fg)
        need_bg = job.overwrite or not _readable(job.bg)
        if not (need_fg or need_bg):
            return job.stem, "skipped", ""
        if job.mask is None:
            raise _BadInputError(f"no mask for {job.image} (expected train/mask/{job.stem}.png)")
        image, alpha = read_image(job.image), read_mask(job.mask)
        if alpha.shape != image.shape[:2]:
            raise _BadInputError(f"{job.image} is {image.shape[:2]} but its mask {job.mask} is {alpha.shape}")
        fg, bg = estimate_fg_bg(image, alpha)
        if need_fg:
            _write_png_atomic(job.fg, fg)
        if need_bg:
            _write_png_atomic(job.bg, bg)
        return job.stem, "written", ""
    except Exception as err:  # one bad image must not stop a 10k-image batch; reported at the end
        expected = (_BadInputError, ImageReadError, ImageSizeError)
        reason = str(err) if isinstance(err, expected) else f"{type(err).__name__}: {err}"
        return job.stem, "failed", reason


def _init_worker() -> None:
    # One process per core already: keep OpenCV and numba from spawning threads of their own.
    cv2.setNumThreads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass


def _jobs(root: Path, out: Path, image_dir: str, overwrite: bool) -> list[_Job]:
    images_dir, masks_dir = root / "train" / image_dir, root / "train" / "mask"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        found = sorted(p.name for p in (root / "train").iterdir()) if (root / "train").is_dir() else []
        raise FileNotFoundError(
            f"P3M-10k training data not found at {root}: expected train/{image_dir}/*.jpg and "
            f"train/mask/*.png (train/ holds {found or 'nothing'}). Set data.root=/path/to/P3M-10k "
            "(the folder that contains train/), or image_dir=... to the images to prepare."
        )
    fg_dir, bg_dir = out / "train" / fg_dir_for(image_dir), out / "train" / BG_DIR
    fg_dir.mkdir(parents=True, exist_ok=True)
    bg_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for image in sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        if image.name.startswith("."):
            continue
        mask = masks_dir / f"{image.stem}.png"
        name = f"{image.stem}.png"
        jobs.append(
            _Job(image.stem, image, mask if mask.is_file() else None, fg_dir / name, bg_dir / name, overwrite)
        )
    return jobs


def _results(jobs: list[_Job], workers: int) -> Iterator[tuple[str, str, str]]:
    if workers <= 1:
        yield from map(_run_job, jobs)
        return
    # spawn, not fork: numba's and OpenCV's thread pools are not fork-safe once started.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        futures: list[Future] = [pool.submit(_run_job, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def default_workers() -> int:
    """min(cpu count, 8): estimation is CPU-bound and one process per core saturates it."""
    return max(1, min(os.cpu_count() or 1, 8))


def prepare_fg_bg(
    root: str | os.PathLike[str],
    output_root: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    image_dir: str = "blurred_image",
    progress: bool = True,
) -> PrepareSummary:
    """Estimate and write fg/bg for every training image of a P3M-10k-layout dataset.

    Resumable: a stem whose fg and bg exist and decode is skipped (unless `overwrite`), and files are
    written through a temporary file and a rename, so an interrupted run leaves no partial outputs.
    Images that cannot be used are skipped and listed in the summary (and logged) at the end; they do
    not stop the batch.

    Args:
        root: dataset root holding `train/<image_dir>/` and `train/mask/`.
        output_root: where `train/<fg dir>/` and `train/bg/` are written; None writes into `root`.
        workers: processes; None -> `default_workers()`; 1 runs in this process.
        overwrite: recompute even when outputs exist.
        image_dir: training image folder; `blurred_image` writes `fg_blurred/`, anything else (e.g.
            `original_image`) writes `fg/`. `bg/` is shared, and an existing bg is kept.
        progress: show a progress bar.

    Returns:
        What was written, skipped and failed.

    Raises:
        FileNotFoundError: `root` does not have the expected training folders.
        ImportError: pymatting is not installed.
    """
    root = Path(root).expanduser()
    out = Path(output_root).expanduser() if output_root is not None else root
    if importlib.util.find_spec("pymatting") is None:  # fail once here, not once per image
        raise ImportError("fg/bg estimation needs pymatting: pip install 'pymatting>=1.1.12'")
    jobs = _jobs(root, out, image_dir, overwrite)
    workers = default_workers() if workers is None else max(1, int(workers))
    workers = min(workers, max(1, len(jobs)))
    log.info(
        "Estimating fg/bg for %d images in %s -> %s (%d worker%s)",
        len(jobs),
        root / "train" / image_dir,
        out / "train",
        workers,
        "" if workers == 1 else "s",
    )
    summary = PrepareSummary()
    for stem, status, reason in tqdm(
        _results(jobs, workers), total=len(jobs), desc="fg/bg", unit="img", disable=not progress
    ):
        if status == "failed":
            summary.failed[stem] = reason
        else:
            getattr(summary, status).append(stem)
    summary.written.sort()
    summary.skipped.sort()
    log.info(
        "fg/bg: %d written, %d skipped (already done), %d failed",
        len(summary.written),
        len(summary.skipped),
        len(summary.failed),
    )
    for stem, reason in sorted(summary.failed.items()):
        log.error("fg/bg failed for %s: %s", stem, reason)
    return summary
