"""Derived files know their sources: what ``p3m prepare`` made, checked before training reads it.

``p3m prepare`` writes files that training reads besides, or instead of, the dataset's own: estimated
fg/bg (PNG or ``.npy``), ``.npy`` copies of fg/bg images, and the packed arrays of ``train/packed/``.
A derived file made from an older version of its source is a silent wrong result (a corrected mask
that training never sees), so every folder prepare writes into has a record beside it
(``train/.fg_blurred.p3m-sources.json`` for ``train/fg_blurred/``, so that the folder itself holds
only samples): for every file prepare wrote there, the files it was made from (paths relative to
the dataset root) with their size, modification time and a BLAKE2b hash of their bytes, taken
before they were read. A file made from another derived file inherits that file's sources too (a
packed fg array depends on the image and mask its fg was estimated from).

- Training (:meth:`p3m.data.layout.P3M10kLayout.train_split`) compares sizes and times, one ``stat``
  per source and no reading: a derived file whose source changed is refused
  (:class:`StaleDataError`, naming both files and the prepare command that refreshes it). A ``.npy``
  or packed array without a record (made by an older p3m, or by hand) is accepted only while it is
  newer than its sources (the ``make`` rule); fg/bg image files without a record may have come with
  the dataset and are read as they are.
- ``p3m prepare`` is the thorough check: where a size or time differs it compares the hash, so a
  copied dataset (new times, same bytes) only gets its record updated, and a changed source makes it
  remake the file.
- Regenerating the synthetic dataset (:func:`p3m.data.synthetic.ensure_synthetic_dataset`) removes
  the derived files it made stale (:func:`remove_stale`).

Records are written through a temporary file and a rename by the process that collects the results,
so a crash leaves the previous record; a file written but not yet recorded is then judged by the
``make`` rule, and adopted by the next prepare run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from p3m.utils.errors import UserError
from p3m.utils.files import write_bytes_atomic

RECORD_SUFFIX = ".p3m-sources.json"  # the record of <folder> is <folder>/../.<folder name><suffix>
_FORMAT = 1

Fingerprint = list[Any]
"""``[size, mtime_ns, blake2b hex digest]`` of a source file."""
Sources = dict[str, Fingerprint]
"""Source path relative to the dataset root (POSIX) -> its fingerprint when the derived file was made."""
Updates = dict[Path, Sources | None]
"""What a prepare job returns to be recorded: derived file -> its sources (None: it was removed)."""


class StaleDataError(UserError):
    """Derived training files older than their sources: the message names them and the refresh command."""


class Freshness(Enum):
    """How a derived file stands against its sources."""

    FRESH = "fresh"
    TOUCHED = "touched"  # a source's time changed but its bytes did not (a copy): re-record, keep
    STALE = "stale"


def fingerprint(path: Path) -> Fingerprint:
    """``[size, mtime_ns, hash]`` of ``path``: stat first, so a change while it is read shows as stale."""
    stat = path.stat()
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, lambda: hashlib.blake2b(digest_size=16)).hexdigest()
    return [stat.st_size, stat.st_mtime_ns, digest]


def relative(root: Path, path: Path) -> str:
    """``path`` relative to the dataset root, as records store it."""
    return Path(os.path.relpath(path.absolute(), root.absolute())).as_posix()


def sources_of(root: Path, paths: Iterable[Path], inherited: Iterable[Sources | None] = ()) -> Sources:
    """The record of a file made from ``paths`` (fingerprinted now) and from ``inherited`` records."""
    sources: Sources = {}
    for parent in inherited:
        sources |= parent or {}
    for path in paths:
        sources[relative(root, path)] = fingerprint(path)
    return sources


def freshness(
    root: Path, sources: Mapping[str, Fingerprint], *, deep: bool, missing_is_stale: bool = False
) -> tuple[Freshness, str | None]:
    """Compare recorded ``sources`` with the files now under ``root``.

    Args:
        root: the dataset root the paths are relative to.
        sources: a derived file's record.
        deep: where a time differs, compare the hash (prepare); otherwise a differing time is stale
            (training: no file is read).
        missing_is_stale: a source that is gone makes the file stale. Otherwise it is skipped: the
            derived file is then the only copy (fg/bg images may be deleted once converted to ``.npy``).

    Returns:
        The verdict and the first source that changed (None when fresh).
    """
    verdict = Freshness.FRESH
    for rel, (size, mtime_ns, digest) in sources.items():
        try:
            stat = (root / rel).stat()
        except FileNotFoundError:
            if missing_is_stale:
                return Freshness.STALE, rel
            continue
        except OSError:
            return Freshness.STALE, rel
        if stat.st_size != size:
            return Freshness.STALE, rel
        if stat.st_mtime_ns != mtime_ns:
            if not deep or fingerprint(root / rel)[2] != digest:
                return Freshness.STALE, rel
            verdict = Freshness.TOUCHED
    return verdict, None


def refreshed(root: Path, sources: Mapping[str, Fingerprint]) -> Sources:
    """``sources`` fingerprinted again where they exist (after a ``Freshness.TOUCHED`` verdict)."""
    return {
        rel: fingerprint(root / rel) if (root / rel).is_file() else list(fp) for rel, fp in sources.items()
    }


def newer_source(derived: Path, sources: Iterable[Path]) -> Path | None:
    """The ``make`` rule for files without a record: the first source modified after ``derived``."""
    made = derived.stat().st_mtime_ns
    return next((s for s in sources if s.is_file() and s.stat().st_mtime_ns > made), None)


@dataclass
class FolderRecord:
    """The record of one folder of derived files: file name -> :data:`Sources`."""

    folder: Path
    files: dict[str, Sources] = field(default_factory=dict)
    changed: bool = False

    @staticmethod
    def path_for(folder: Path) -> Path:
        """Where the record of ``folder`` is: beside it, hidden."""
        return folder.parent / f".{folder.name}{RECORD_SUFFIX}"

    @classmethod
    def load(cls, folder: Path) -> FolderRecord:
        """The folder's record; an unreadable or foreign one counts as empty (its files are unrecorded)."""
        try:
            document = json.loads(cls.path_for(folder).read_text())
        except (OSError, ValueError):
            return cls(folder)
        files = document.get("files") if isinstance(document, dict) else None
        return cls(folder, files if isinstance(files, dict) else {})

    def get(self, path: Path) -> Sources | None:
        """The sources of ``path`` (a file of this folder), None when it has no record."""
        return self.files.get(path.name)

    def set(self, path: Path, sources: Sources | None) -> None:
        """Record (``None``: forget) the sources of ``path``."""
        if sources is None:
            self.changed |= self.files.pop(path.name, None) is not None
        else:
            self.files[path.name] = sources
            self.changed = True

    def save(self) -> None:
        """Write the record atomically when it changed (nothing when it did not)."""
        if not self.changed:
            return
        path = self.path_for(self.folder)
        if not self.files and not path.exists():
            return
        document = {"format": _FORMAT, "written_by": "p3m prepare", "files": dict(sorted(self.files.items()))}
        write_bytes_atomic(path, (json.dumps(document, indent=0) + "\n").encode())
        self.changed = False


class Records:
    """The records of several folders, loaded once each (a prepare run or a training set's check)."""

    def __init__(self) -> None:
        self._folders: dict[Path, FolderRecord] = {}

    def folder(self, folder: Path) -> FolderRecord:
        """The record of ``folder`` (loaded on first use)."""
        if folder not in self._folders:
            self._folders[folder] = FolderRecord.load(folder)
        return self._folders[folder]

    def get(self, path: Path) -> Sources | None:
        """The recorded sources of ``path``, None when it has none."""
        return self.folder(path.parent).get(path)

    def set(self, path: Path, sources: Sources | None) -> None:
        """Record (``None``: forget) the sources of ``path``."""
        self.folder(path.parent).set(path, sources)

    def save(self) -> None:
        """Write every record that changed."""
        for record in self._folders.values():
            record.save()


@dataclass(frozen=True)
class Derived:
    """A derived file training is about to read.

    Attributes:
        path: the file.
        sources: what it is made from, for the ``make`` rule when it has no record.
        unrecorded_ok: accept it without a record and without the ``make`` rule (fg/bg image files,
            which may have come with the dataset).
    """

    path: Path
    sources: tuple[Path, ...] = ()
    unrecorded_ok: bool = False


def stale_files(root: Path, files: Iterable[Derived]) -> Iterator[tuple[Path, Path]]:
    """(derived file, the source it is older than) for every stale file of ``files``; stat only."""
    records = Records()
    for item in files:
        sources = records.get(item.path)
        if sources is not None:
            verdict, changed = freshness(root, sources, deep=False)
            if verdict is not Freshness.FRESH:
                yield item.path, root / str(changed)
        elif not item.unrecorded_ok:
            newer = newer_source(item.path, item.sources)
            if newer is not None:
                yield item.path, newer


def remove_stale(root: Path) -> list[Path]:
    """Delete the recorded derived files under ``root/train`` whose sources changed; returns them.

    For the synthetic generator after it rewrote its files (and removed those of samples it no
    longer has). Files whose sources only got new times (rewritten with the same bytes) stay, with
    their record updated.
    """
    removed = []
    for record_path in sorted((root / "train").rglob(f".*{RECORD_SUFFIX}")):
        record = FolderRecord.load(record_path.with_name(record_path.name[1 : -len(RECORD_SUFFIX)]))
        for name, sources in list(record.files.items()):
            derived = record.folder / name
            verdict, _ = freshness(root, sources, deep=True, missing_is_stale=True)
            if verdict is Freshness.STALE or not derived.is_file():
                derived.unlink(missing_ok=True)
                record.set(derived, None)
                removed.append(derived)
            elif verdict is Freshness.TOUCHED:
                record.set(derived, refreshed(root, sources))
        record.save()
    return removed


_SAVE_EVERY = 256  # results between record saves: an interrupted run keeps what it recorded


def record_results(
    results: Iterable[tuple[str, str, str, Updates]], records: Records
) -> Iterator[tuple[str, str, str]]:
    """Pass on a prepare step's ``(stem, status, reason)`` results, recording what each job wrote.

    Jobs run in worker processes and return the records of the files they wrote (``None``: a file
    they removed); this process alone writes the record files, every few hundred results and at the
    end, also when the run is interrupted.
    """
    try:
        for done, (stem, status, reason, updates) in enumerate(results, 1):
            for path, sources in updates.items():
                records.set(path, sources)
            if done % _SAVE_EVERY == 0:
                records.save()
            yield stem, status, reason
    finally:
        records.save()
