"""A folder of portraits and a folder of their mattes: pairing by stem, checking, holding some out.

``data=folder`` (:mod:`p3m.data.folder`) starts here. Files pair by stem (the name without its
suffix), whatever image suffixes they have (:data:`p3m.utils.conventions.IMAGE_SUFFIXES`). Every
problem is collected as a :class:`BadPair` naming its file, so that one report lists them all before
anything trains: an image without a matte or the reverse, two files of one stem in a folder, a file
that does not decode (missing, empty, truncated), an image and matte of different sizes.

The held-out stems are drawn by rank of a seeded hash of each stem (:func:`held_out_stems`): the
same folder gives the same split on every machine, and adding images moves few stems between the
two parts.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from p3m.data.io import ImageReadError, ImageSizeError, read_image, read_mask
from p3m.data.labels import label_stats
from p3m.utils.conventions import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Pair:
    """An image and its matte (or mask), paired by stem."""

    stem: str
    image: Path
    matte: Path


@dataclass(frozen=True)
class BadPair:
    """A file that cannot be used, and why (the reason names the file and, where it helps, the fix)."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return self.reason if str(self.path) in self.reason else f"{self.path}: {self.reason}"


def list_images(folder: Path) -> dict[str, list[Path]]:
    """stem -> the image files of that stem directly inside ``folder`` (hidden files ignored), sorted."""
    found: dict[str, list[Path]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            if entry.name.startswith(".") or suffix.lower() not in IMAGE_SUFFIXES or entry.is_dir():
                continue
            found.setdefault(stem, []).append(Path(entry.path))
    return {stem: sorted(paths) for stem, paths in sorted(found.items())}


def pair_folders(images_dir: Path, mattes_dir: Path) -> tuple[list[Pair], list[BadPair]]:
    """Pair the images of ``images_dir`` with the mattes of ``mattes_dir`` by stem.

    Returns:
        The pairs, sorted by stem, and a :class:`BadPair` for every file left out: no partner, or
        several files of one stem in a folder (each of them is named).
    """
    images, mattes = list_images(images_dir), list_images(mattes_dir)
    bad: list[BadPair] = []
    for index in (images, mattes):
        for stem, paths in index.items():
            if len(paths) > 1:
                names = ", ".join(p.name for p in paths)
                bad += [
                    BadPair(p, f"one of {len(paths)} files with the stem {stem!r} ({names}): keep one")
                    for p in paths
                ]
    for stem in sorted(set(images) - set(mattes)):
        bad.append(BadPair(images[stem][0], f"no matte named {stem}.* in {mattes_dir}"))
    for stem in sorted(set(mattes) - set(images)):
        bad.append(BadPair(mattes[stem][0], f"no image named {stem}.* in {images_dir}"))
    pairs = [
        Pair(stem, images[stem][0], mattes[stem][0])
        for stem in sorted(set(images) & set(mattes))
        if len(images[stem]) == 1 and len(mattes[stem]) == 1
    ]
    return pairs, bad


def held_out_stems(stems: Sequence[str], fraction: float, seed: int) -> list[str]:
    """``round(fraction * len(stems))`` stems (at least 1, leaving at least 1), ranked by a seeded hash."""
    if len(stems) < 2:
        return []
    count = min(len(stems) - 1, max(1, round(fraction * len(stems))))
    ranked = sorted(
        stems, key=lambda stem: hashlib.blake2b(f"{seed}/{stem}".encode(), digest_size=8).digest()
    )
    return sorted(ranked[:count])


def file_signature(path: Path) -> list[int | str]:
    """What tells a changed file apart: its resolved path, size and modification time (ns)."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def scan_pair(pair: Pair) -> tuple[str, str, str]:
    """Decode an image and its matte, compare their sizes and measure the matte (a process-pool job).

    Returns:
        ``(stem, "ok", JSON of {"shape", "low", "high", "between", "boundary"})`` or
        ``(stem, "failed", reason naming the file)``; never raises (the pool's contract).
    """
    try:
        image = read_image(pair.image)
        matte = read_mask(pair.matte)
    except (ImageReadError, ImageSizeError) as err:
        return pair.stem, "failed", str(err)
    except Exception as err:  # one odd file must not stop the scan of the others; it is reported
        return pair.stem, "failed", f"cannot read {pair.image} or {pair.matte}: {type(err).__name__}: {err}"
    if matte.shape != image.shape[:2]:
        (h, w), (mh, mw) = image.shape[:2], matte.shape
        return pair.stem, "failed", f"{pair.image} is {w}x{h} px but its matte {pair.matte} is {mw}x{mh} px"
    stats = label_stats(matte)
    info = {"shape": list(matte.shape), "low": stats.low, "high": stats.high}
    return pair.stem, "ok", json.dumps(info | {"between": stats.between, "boundary": stats.boundary})


def bad_pairs_report(bad: Iterable[BadPair], images_dir: Path, mattes_dir: Path, shown: int = 50) -> str:
    """One message listing every bad pair (the first ``shown`` of them, and how many more)."""
    bad = sorted(bad, key=lambda b: str(b.path))
    lines = [f"  {b}" for b in bad[:shown]]
    if len(bad) > shown:
        lines.append(f"  ... and {len(bad) - shown} more")
    return (
        f"{len(bad)} file(s) of data.images={images_dir} and data.mattes={mattes_dir} cannot be used:\n"
        + "\n".join(lines)
        + "\nFix or remove them, or set data.skip_bad_pairs=true to train without them (nothing was trained)"
    )
