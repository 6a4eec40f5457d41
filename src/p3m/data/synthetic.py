"""A deterministic, P3M-10k-shaped synthetic dataset for smoke runs, tests and demos.

`ensure_synthetic_dataset` writes (once; again only when its parameters change or a file it wrote is
missing; files it did not write are never touched, except the ones ``p3m prepare`` made from files it
rewrote, which are removed) a tiny dataset in the official P3M-10k layout, plus
the ground truth that P3M-10k lacks (exact fg/bg, non-blurred originals) and a few source faces for
P3M-CP::

    train/blurred_image/<stem>.jpg      composite with the face Gaussian-blurred inside the face mask
    train/original_image/<stem>.jpg     the same composite with the face intact (privacy mode `none`)
    train/mask/<stem>.png               8-bit alpha matte
    train/fg_blurred/<stem>.png         foreground of the blurred image (exact, lossless)
    train/fg/<stem>.png                 foreground of the original image (exact, lossless)
    train/bg/<stem>.png                 background (exact, lossless PNG, not the official JPEG: the
                                        synthetic composite is reproduced to rounding)
    train/facemask/<stem>.png           0/255 face region
    validation/P3M-500-P/{blurred_image,mask,trimap,facemask}/
    validation/P3M-500-NP/{original_image,mask,trimap}/       (no facemask, as in the official release)
    public_faces/{images/*.jpg, masks/*.png}                  square face crops + face-parsing-like masks
    synthetic_manifest.json                                   parameters and every file written; last

The pictures are drawn by :mod:`p3m.data.synthetic_portrait`. Test trimaps follow the official
training rule (ellipse kernel, fg = erode(alpha == 255), unknown = dilate(alpha > 0) - fg) with the
kernel scaled to the image size.

Every sample draws from its own generator seeded by (seed, split, index), so a sample does not change
when the counts change. JPEGs use 4:4:4 chroma so that the blurred and original images differ only in the
8x8 blocks that touch the face mask.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from p3m.data.io import MIN_IMAGE_SIDE
from p3m.data.provenance import remove_stale
from p3m.data.synthetic_portrait import GENERATOR_VERSION, render_face_crop, render_portrait
from p3m.data.trimap import trimap_from_alpha
from p3m.utils.conventions import kernel_for_size
from p3m.utils.errors import UserError
from p3m.utils.files import write_bytes_atomic, write_image

log = logging.getLogger(__name__)

MANIFEST_NAME = "synthetic_manifest.json"
JPEG_PARAMS = [
    cv2.IMWRITE_JPEG_QUALITY,
    95,
    cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
    cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
]
MIN_SIDE = MIN_IMAGE_SIDE  # the readers reject smaller pictures as broken files

_SPLIT_IDS = {"train": 0, "P3M-500-P": 1, "P3M-500-NP": 2, "public_faces": 3}


def trimap_kernel_size(height: int, width: int) -> int:
    """Odd trimap kernel for an image of this size: the samples README's 25 at a 1080 px short side."""
    return kernel_for_size(height, width)


def _write(path: Path, image: np.ndarray) -> None:
    """Write RGB or single-channel uint8; the format follows the suffix (JPEG 95 4:4:4 or PNG)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    write_image(path, bgr, JPEG_PARAMS if path.suffix == ".jpg" else [])


def _params(
    num_train: int, num_test: int, size: tuple[int, int], seed: int, num_faces: int
) -> dict[str, Any]:
    """Check and normalise the parameters (config values may be ListConfig or strings of ints)."""
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError) as err:
        raise ValueError(f"synthetic data `size` must be [height, width], got {size!r}") from err
    if min(height, width) < MIN_SIDE:
        raise ValueError(f"synthetic data `size` must be at least {MIN_SIDE} px per side, got {size!r}")
    counts = {"num_train": int(num_train), "num_test": int(num_test), "num_faces": int(num_faces)}
    if counts["num_train"] < 1:
        raise ValueError(f"synthetic data `num_train` must be >= 1, got {num_train}")
    for key in ("num_test", "num_faces"):
        if counts[key] < 0:
            raise ValueError(f"synthetic data `{key}` must be >= 0, got {counts[key]}")
    return {
        "generator_version": GENERATOR_VERSION,
        **counts,
        "size": [height, width],
        "seed": int(seed),
    }


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


# (folder, Portrait/FaceCrop attribute, suffix) of each file of a sample, per split.
_TRAIN_FILES = (
    ("blurred_image", "blurred", ".jpg"),
    ("original_image", "original", ".jpg"),
    ("mask", "alpha", ".png"),
    ("fg_blurred", "fg_blurred", ".png"),
    ("fg", "fg", ".png"),
    ("bg", "bg", ".png"),
    ("facemask", "facemask", ".png"),
)
_TEST_FILES: dict[str, tuple[str, *tuple[tuple[str, str, str], ...]]] = {
    "P3M-500-P": ("p", ("blurred_image", "blurred", ".jpg"), ("facemask", "facemask", ".png")),
    "P3M-500-NP": ("np", ("original_image", "original", ".jpg")),
}
_TEST_MAPS = (("mask", "alpha", ".png"), ("trimap", "trimap", ".png"))
_FACE_FILES = (("images", "image", ".jpg"), ("masks", "mask", ".png"))


def _samples(params: dict[str, Any]) -> Iterator[tuple[str, int, dict[str, str]]]:
    """(split, index, {attribute: file relative to the root}) of every sample the generator writes."""
    for i in range(params["num_train"]):
        yield "train", i, {a: f"train/{d}/syn_train_{i:04d}{x}" for d, a, x in _TRAIN_FILES}
    for split, (tag, *files) in _TEST_FILES.items():
        for i in range(params["num_test"]):
            stem = f"validation/{split}/{{}}/syn_val{tag}_{i:04d}"
            yield split, i, {a: stem.format(d) + x for d, a, x in (*files, *_TEST_MAPS)}
    for i in range(params["num_faces"]):
        yield "public_faces", i, {a: f"public_faces/{d}/syn_face_{i:04d}{x}" for d, a, x in _FACE_FILES}


def _planned_files(params: dict[str, Any]) -> list[str]:
    """Every file (relative to the root, POSIX) the generator writes for `params`."""
    return [rel for _, _, files in _samples(params) for rel in files.values()]


def _owned_files(manifest: dict[str, Any]) -> set[str]:
    """The files a manifest says the generator wrote (older manifests list only their parameters)."""
    if "files" in manifest:
        return set(manifest["files"])
    try:
        return set(_planned_files(manifest["params"]))
    except (KeyError, TypeError):
        return set()


def _is_complete(root: Path, params: dict[str, Any], manifest: dict[str, Any] | None) -> bool:
    """The manifest is finished, has these parameters, and every file it lists exists (no decoding).

    Files the generator did not write (``.npy`` conversions of src/prepare.py, packed arrays, a
    user's notes) are not looked at: they never make a dataset incomplete.
    """
    if (
        manifest is None
        or manifest.get("params") != params
        or manifest.get("state", "complete") != "complete"
    ):
        return False
    return all((root / rel).is_file() for rel in _owned_files(manifest))


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_IDS[split], index])


def _generate(out: Path, params: dict[str, Any]) -> None:
    """Write every file of `_planned_files(params)` under `out` (replacing files already there)."""
    height, width = params["size"]
    kernel = trimap_kernel_size(height, width)
    for split, index, files in _samples(params):
        rng = _rng(params["seed"], split, index)
        if split == "public_faces":
            sample: Any = render_face_crop(rng, min(height, width))
        else:
            sample = render_portrait(rng, height, width)
        for attribute, rel in files.items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if attribute == "trimap":
                _write(path, trimap_from_alpha(sample.alpha, kernel))
            else:
                _write(path, getattr(sample, attribute))


def _write_manifest(root: Path, params: dict[str, Any], files: Iterable[str], state: str) -> None:
    manifest = {
        "generator": __name__,
        "params": params,
        "layout": "P3M-10k (see module docstring)",
        # "writing" while files are replaced in place: every file listed is the generator's, old or new.
        "state": state,
        "files": sorted(files),
    }
    write_bytes_atomic(root / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())


def _generate_fresh(root: Path, params: dict[str, Any]) -> None:
    """Generate into a hidden sibling folder and rename it to `root` (missing or empty) when complete.

    An interrupted run never leaves a half dataset that looks finished.
    """
    # Not mkdtemp: its 0700 mode would stick to the dataset; os.mkdir honours the umask.
    tmp = root.with_name(f".{root.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        _generate(tmp, params)
        _write_manifest(tmp, params, _planned_files(params), "complete")
        try:
            os.rename(tmp, root)  # replaces an empty folder, fails on a non-empty one
        except OSError:
            # Another process (e.g. a second DDP rank) finished first: keep its copy if it is what we want.
            if not _is_complete(root, params, _read_manifest(root)):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _regenerate_in_place(root: Path, params: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Rewrite an incomplete or outdated synthetic dataset, touching only the generator's own files.

    Files the generator did not write stay, except what ``p3m prepare`` made from the files it
    rewrote (``.npy`` fg/bg, ``train/packed/``): those are stale and removed
    (:func:`p3m.data.provenance.remove_stale`). A file standing where the generator would write is
    refused, since it cannot tell a user's file from its own.
    """
    owned, planned = _owned_files(manifest), _planned_files(params)
    foreign = [rel for rel in planned if rel not in owned and (root / rel).exists()]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise UserError(
            f"{root}: {len(foreign)} file(s) where the synthetic generator would write are not listed in "
            f"its {MANIFEST_NAME} ({shown}); nothing was changed. Move them away, or point data.root "
            "at another folder for the synthetic data"
        )
    _write_manifest(root, params, owned | set(planned), "writing")
    _generate(root, params)
    for rel in sorted(owned - set(planned)):  # the previous parameters' samples, written by us
        (root / rel).unlink(missing_ok=True)
    _write_manifest(root, params, planned, "complete")
    stale = remove_stale(root)
    if stale:
        log.info(
            "Removed %d file(s) p3m prepare had made from the previous samples (e.g. %s)",
            len(stale),
            stale[0],
        )


def ensure_synthetic_dataset(
    root: str | os.PathLike[str],
    num_train: int = 16,
    num_test: int = 4,
    size: tuple[int, int] = (256, 192),
    seed: int = 0,
    num_faces: int = 4,
) -> Path:
    """Write the synthetic P3M-style dataset at `root` unless an identical one is already there.

    A missing or empty `root` is generated in a hidden sibling folder and renamed into place when
    complete. A synthetic dataset made with other parameters, or missing some of its files, is
    rewritten in place: only the files its manifest lists are replaced or removed, so files it did
    not write (a user's folders) are kept and never make it incomplete; what ``p3m prepare`` made
    from the rewritten files (``.npy`` conversions, ``train/packed/``) is removed where it went stale,
    so training reads the new samples. Any other non-empty folder is refused.

    Args:
        root: where the dataset lives (created if missing).
        num_train: training portraits.
        num_test: portraits in each of P3M-500-P and P3M-500-NP.
        size: (height, width) of every portrait, at least `MIN_SIDE` (32) px each.
        seed: base seed; sample i of a split always comes from seed (seed, split, i).
        num_faces: square source faces in public_faces/ (side = min(height, width)), for P3M-CP.

    Returns:
        The dataset root.

    Raises:
        ValueError: a parameter is out of range.
        UserError: `root` is not a synthetic dataset, or a file the generator did not write stands
            where it would write.
    """
    root = Path(root).expanduser().absolute()
    params = _params(num_train, num_test, size, seed, num_faces)
    manifest = _read_manifest(root)
    if _is_complete(root, params, manifest):
        return root
    start = time.perf_counter()
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        root.parent.mkdir(parents=True, exist_ok=True)
        _generate_fresh(root, params)
    elif root.is_dir() and manifest is not None:
        _regenerate_in_place(root, params, manifest)
    else:
        raise UserError(
            f"{root} exists and is not a synthetic dataset (no readable {MANIFEST_NAME}); refusing to write "
            "into it. Point the synthetic data root elsewhere (e.g. data.root=data/synthetic)."
        )
    log.info("Wrote a synthetic P3M dataset to %s in %.2f s (%s)", root, time.perf_counter() - start, params)
    return root
