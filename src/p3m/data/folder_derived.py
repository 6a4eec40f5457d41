"""The derived dataset of ``data=folder``: a P3M-10k-style folder made from the user's two folders.

:class:`DerivedFolder` pairs and reads the user's portraits and labels (:mod:`p3m.data.folder_pairs`),
holds some out, decides each label's kind (:mod:`p3m.data.labels`) and writes, under its root::

    train/original_image/   links to the training images, as given (privacy=none, obfuscate)
    train/blurred_image/    the anonymiser's copies, faces blurred (privacy=ppt, cp) ...
    train/facemask/         ... and their face masks
    train/mask/             training labels as 8-bit PNGs: soft mattes as given, binary masks as
                            0/255, or 0/255 with the band taken from the starting network (pseudo)
    train/fg_blurred|fg/, bg/   foreground and background colours (p3m.data.fgbg, resumable, parallel)
    validation/held-out/{image,mask,trimap}/   the held-out part (trimaps when its labels are all soft)
    pseudo/<key>/           the starting network's mattes of the binary training images (band_labels=pseudo)
    p3m_folder.json         the manifest: what each stem's derived files were made from

Each stem's derived files are remade when its image, matte, part (training or held-out) or label
recipe changes, and only then; the user's folders are only read, and the root is refused when it
holds files that no manifest accounts for. Every step writes through a temporary file and a rename,
and the manifest is saved once the labels are written, so an interrupted start resumes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from p3m.data.fgbg import fg_dir_for, prepare_fg_bg
from p3m.data.folder_pairs import (
    BadPair,
    Pair,
    bad_pairs_report,
    file_signature,
    held_out_stems,
    pair_folders,
    scan_pair,
)
from p3m.data.io import read_image, read_mask
from p3m.data.labels import BINARY, SOFT, LabelStats, band_kernel_for, binarize, pseudo_labelled
from p3m.data.layout import DatasetLayoutError, TrainingReads
from p3m.data.trimap import trimap_from_alpha
from p3m.utils.conventions import kernel_for_size
from p3m.utils.errors import MissingInputError, SettingError, UserError
from p3m.utils.files import write_bytes_atomic, write_image
from p3m.utils.process_pool import default_workers, run_jobs

log = logging.getLogger(__name__)

MANIFEST_NAME = "p3m_folder.json"
MANIFEST_FORMAT = 1
HELD_OUT = "held-out"  # the evaluation split's name and its folder under validation/
AS_GIVEN_DIR = "original_image"  # training images as given (links), read by privacy=none and obfuscate
# Folders of one stem's derived files (under the derived root); pseudo/ is handled on its own.
DERIVED_DIRS = (
    "train/original_image",
    "train/blurred_image",
    "train/facemask",
    "train/mask",
    "train/fg",
    "train/fg_blurred",
    "train/bg",
    f"validation/{HELD_OUT}/image",
    f"validation/{HELD_OUT}/mask",
    f"validation/{HELD_OUT}/trimap",
)
# Runs the anonymiser over a folder: (input_dir, output_dir, alpha_dir=) -> a report with `no_face`
# and `failures` (p3m.privacy.anonymizer.Anonymizer).
Anonymizer = Callable[..., Any]
# Loads the starting network as a predictor: (path=checkpoint) -> (RGB uint8 image -> float matte).
PseudoLabeler = Callable[..., Callable[[np.ndarray], np.ndarray]]


def band_kernel_of(entry: Mapping[str, Any], at_1080: int) -> int | None:
    """The band kernel of a manifest entry's binary label (None for a soft one)."""
    if entry["kind"] != BINARY:
        return None
    height, width = entry["scan"]["shape"]
    return band_kernel_for(height, width, at_1080)


class DerivedFolder:
    """The derived dataset of one pair of folders (see the module docstring).

    Args:
        images, mattes: the user's folders.
        root: where the derived dataset lives.
        settings: ``data.*`` of :class:`~p3m.data.folder.FolderDataModule` (``labels``, ``band_kernel``,
            ``band_labels``, ``val_fraction``, ``val_stems``, ``split_seed``, ``skip_bad_pairs``,
            ``prepare_workers``, ``init_from``, ``require_fg_bg``).
        reads: what the privacy mode lets training read.
        anonymizer: runs the face anonymiser (privacy modes that read blurred images or face masks).
        pseudo_labeler: loads ``init_from`` as a predictor (``band_labels=pseudo``).
    """

    def __init__(
        self,
        images: Path,
        mattes: Path,
        root: Path,
        settings: Any,
        reads: TrainingReads,
        anonymizer: Anonymizer | None = None,
        pseudo_labeler: PseudoLabeler | None = None,
    ) -> None:
        self.images, self.mattes, self.root = images, mattes, root
        self.settings = settings
        self._reads = reads
        self.anonymizer = anonymizer
        self.pseudo_labeler = pseudo_labeler

    def prepare(self, training: bool) -> dict[str, Any]:
        """Everything before training, and the manifest; ``training=False`` (validate, test) derives the
        held-out part only."""
        manifest = self._open_manifest()
        pairs, bad = pair_folders(self.images, self.mattes)
        bad += self._scan(manifest, pairs)
        if bad:
            report = bad_pairs_report(bad, self.images, self.mattes)
            if not self.settings.skip_bad_pairs:
                raise DatasetLayoutError(report)
            log.warning(
                "%s", report.rsplit("\n", 1)[0] + "\n(data.skip_bad_pairs=true: training without them)"
            )
        entries = manifest["stems"]
        usable = [pair for pair in pairs if pair.stem in entries]
        held = set(self._held_out([pair.stem for pair in usable]))
        moved = {p.stem for p in usable if entries[p.stem].get("part") not in (None, _part(p.stem, held))}
        self._remove_derived(moved)  # a stem that changed part: its files in the other part go
        for pair in usable:
            entry = entries[pair.stem]
            if pair.stem in moved:
                entry.pop(f"label_{entry['part']}", None)
            entry["part"] = _part(pair.stem, held)
        train = [pair for pair in usable if pair.stem not in held]
        held_out = [pair for pair in usable if pair.stem in held]
        if not train or not held_out:
            raise DatasetLayoutError(
                f"{len(usable)} usable pair(s) in data.images={self.images} and data.mattes={self.mattes}: "
                f"{len(train)} to train on and {len(held_out)} held out; at least one of each is needed"
            )
        manifest["train"], manifest["held_out"] = [p.stem for p in train], [p.stem for p in held_out]
        for pair in usable:
            entries[pair.stem]["kind"] = self._kind(entries[pair.stem])
        self._report_labels(entries, train, held_out)
        self._save(manifest)
        self._derive_held_out(held_out, entries)
        if training:
            self._derive_training(train, manifest)
        self._save(manifest)
        return manifest

    def _open_manifest(self) -> dict[str, Any]:
        """The derived folder's manifest; a fresh one for a new folder. Refuses a folder not made here."""
        path = self.root / MANIFEST_NAME
        if path.is_file():
            try:
                manifest = json.loads(path.read_text())
            except json.JSONDecodeError:
                manifest = {}
            if manifest.get("format") == MANIFEST_FORMAT:
                return manifest
            log.info("%s is damaged or from another version: remaking the derived data", path)
        elif self.root.is_dir() and any(self.root.iterdir()):
            raise UserError(
                f"{self.root} holds files but no {MANIFEST_NAME}: it was not made by data=folder, and "
                "nothing in it is deleted; set data.cache_dir to another folder"
            )
        _remove_contents(self.root)
        return {
            "format": MANIFEST_FORMAT,
            "images": str(self.images),
            "mattes": str(self.mattes),
            "stems": {},
        }

    def _save(self, manifest: Mapping[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.root / MANIFEST_NAME, (json.dumps(manifest, indent=1) + "\n").encode())

    def _held_out(self, stems: Sequence[str]) -> list[str]:
        wanted = self.settings.val_stems
        if wanted is None:
            return held_out_stems(stems, float(self.settings.val_fraction), int(self.settings.split_seed))
        if isinstance(wanted, str):
            path = Path(wanted).expanduser()
            if not path.is_file():
                raise MissingInputError(
                    f"data.val_stems={wanted}: no such file (a list of stems, or a file of them)"
                )
            wanted = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        unknown = sorted(set(wanted) - set(stems))
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else "")
            raise SettingError(
                f"data.val_stems names {len(unknown)} stem(s) with no pair in data.images: {shown}"
            )
        return sorted(set(wanted))

    def _scan(self, manifest: dict[str, Any], pairs: Sequence[Pair]) -> list[BadPair]:
        """Read every new or changed pair (in parallel); drop the derived files of changed or gone stems."""
        entries: dict[str, Any] = manifest["stems"]
        sources = {p.stem: [file_signature(p.image), file_signature(p.matte)] for p in pairs}
        stale = {stem for stem, entry in entries.items() if entry.get("source") != sources.get(stem)}
        if stale:
            self._remove_derived(stale)
            for stem in stale:
                del entries[stem]
        todo = [pair for pair in pairs if pair.stem not in entries]
        by_stem = {pair.stem: pair for pair in todo}
        bad = []
        if todo:
            log.info("reading %d new or changed pair(s) of %s and %s", len(todo), self.images, self.mattes)
        for stem, status, payload in run_jobs(todo, self._workers(len(todo)), scan_pair):
            if status == "ok":
                entries[stem] = {"source": sources[stem], "scan": json.loads(payload)}
            else:
                bad.append(BadPair(by_stem[stem].image, payload))
        return bad

    def _kind(self, entry: Mapping[str, Any]) -> str:
        mode = self.settings.labels
        if mode != "auto":
            return str(mode)
        scan = entry["scan"]
        stats = LabelStats(scan["low"], scan["high"], scan["between"], scan["boundary"])
        return BINARY if stats.binary else SOFT

    def _report_labels(
        self, entries: Mapping[str, Any], train: Sequence[Pair], held_out: Sequence[Pair]
    ) -> None:
        """Say at start what the labels are and how they will be used."""
        kinds = [entries[pair.stem]["kind"] for pair in (*train, *held_out)]
        binary = kinds.count(BINARY)
        how = f"data.labels={self.settings.labels}"
        log.info(
            "data=folder: %d pairs, %d to train on, %d held out (%s); labels: %d binary mask(s), "
            "%d soft matte(s) (%s)",
            len(kinds),
            len(train),
            len(held_out),
            HELD_OUT,
            binary,
            len(kinds) - binary,
            how,
        )
        if binary:
            log.info(
                "binary masks train in binary-label mode: their label is kept outside a transition band "
                "of %d px at a 1080 px short side around the mask's boundary; inside it %s",
                self.settings.band_kernel,
                "no alpha is supervised (data.band_labels=ignore)"
                if self.settings.band_labels == "ignore"
                else "the starting network's matte is the label (data.band_labels=pseudo)",
            )
        if any(entries[pair.stem]["kind"] == BINARY for pair in held_out):
            log.info(
                "held-out metrics compare with binary masks (no trimap metrics): soft edges count as error"
            )
        for pair in (*train, *held_out):
            low, high = entries[pair.stem]["scan"]["low"], entries[pair.stem]["scan"]["high"]
            if entries[pair.stem]["kind"] == SOFT and high <= 1:
                log.warning(
                    "%s: its values are %d..%d, a 0/1 mask taken as a soft matte; set data.labels=binary",
                    pair.matte,
                    low,
                    high,
                )
                break

    def _derive_held_out(self, held_out: Sequence[Pair], entries: Mapping[str, Any]) -> None:
        base = self.root / "validation" / HELD_OUT
        all_soft = all(entries[pair.stem]["kind"] == SOFT for pair in held_out)
        for pair in held_out:
            _link(pair.image, base / "image" / f"{pair.stem}{pair.image.suffix.lower()}")
        jobs = [
            _LabelJob(
                pair.stem,
                pair.matte,
                entries[pair.stem]["kind"],
                base / "mask" / f"{pair.stem}.png",
                role=HELD_OUT,
                trimap=base / "trimap" / f"{pair.stem}.png" if all_soft else None,
            )
            for pair in held_out
        ]
        self._write_labels(jobs, entries)

    def _derive_training(self, train: Sequence[Pair], manifest: dict[str, Any]) -> None:
        entries, reads = manifest["stems"], self._reads
        if reads.anonymized or reads.needs_facemask:
            self._anonymize(train, entries)
        if not reads.anonymized:
            log.warning(
                "privacy=%s: training on the images of %s as given (faces are not anonymised)",
                reads.mode,
                self.images,
            )
            for pair in train:
                _link(
                    pair.image, self.root / "train" / AS_GIVEN_DIR / f"{pair.stem}{pair.image.suffix.lower()}"
                )
        image_dir = reads.image_dirs[0] if reads.anonymized else AS_GIVEN_DIR
        pseudo = self._pseudo_labels(train, entries, image_dir)
        jobs = [
            _LabelJob(
                pair.stem,
                pair.matte,
                entries[pair.stem]["kind"],
                self.root / "train" / "mask" / f"{pair.stem}.png",
                role="train",
                band_kernel=band_kernel_of(entries[pair.stem], int(self.settings.band_kernel))
                if pair.stem in pseudo
                else None,
                pseudo=pseudo.get(pair.stem),
            )
            for pair in train
        ]
        self._write_labels(jobs, entries)
        self._save(manifest)  # the labels are written: an interrupted fg/bg estimation resumes from here
        fg_dir = self.root / "train" / fg_dir_for(image_dir)
        done = all(
            (fg_dir / f"{p.stem}.png").is_file() and (self.root / "train" / "bg" / f"{p.stem}.png").is_file()
            for p in train
        )
        if self.settings.require_fg_bg and not done:  # written atomically: a file that is there is whole
            summary = prepare_fg_bg(
                self.root, workers=self._workers(len(train)), image_dir=image_dir, progress=False
            )
            if summary.failed:
                raise DatasetLayoutError(
                    "foreground/background estimation failed for "
                    + "; ".join(f"{stem}: {why}" for stem, why in sorted(summary.failed.items()))
                )

    def _anonymize(self, train: Sequence[Pair], entries: Mapping[str, Any]) -> None:
        """Blur the faces of the training images not anonymised yet (and make their face masks)."""
        blurred_dir, facemask_dir = self.root / "train" / "blurred_image", self.root / "train" / "facemask"
        pending = [
            pair
            for pair in train
            if not (
                (blurred_dir / f"{pair.stem}.png").is_file() and (facemask_dir / f"{pair.stem}.png").is_file()
            )
        ]
        if not pending:
            return
        if self.anonymizer is None:
            raise SettingError(
                f"privacy={self._reads.mode} trains on face-blurred images, but data.anonymizer is null: set "
                "it (conf/data/folder.yaml), or train on the images as given with privacy=none"
            )
        staging = self.root / ".staging"
        _remove_contents(staging)
        (staging / "alpha").mkdir()
        for pair in pending:
            _link(pair.image, staging / "input" / f"{pair.stem}{pair.image.suffix.lower()}")
            label = _label(pair.matte, entries[pair.stem]["kind"])  # 0/1 masks made 0/255 for the band
            write_image(staging / "alpha" / f"{pair.stem}.png", label)
        log.info("anonymising %d training image(s) (privacy=%s)", len(pending), self._reads.mode)
        report = self.anonymizer(staging / "input", staging / "output", alpha_dir=staging / "alpha")
        if report.failures:
            raise DatasetLayoutError(
                "the anonymiser failed on "
                + "; ".join(f"{name}: {why}" for name, why in report.failures.items())
            )
        if report.no_face:
            log.warning(
                "no face found in %d training image(s), used unblurred (check them by eye): %s",
                len(report.no_face),
                ", ".join(report.no_face),
            )
        for folder, target in (("blurred_image", blurred_dir), ("facemask", facemask_dir)):
            target.mkdir(parents=True, exist_ok=True)
            for pair in pending:
                os.replace(staging / "output" / folder / f"{pair.stem}.png", target / f"{pair.stem}.png")
        shutil.rmtree(staging)

    def _pseudo_labels(
        self, train: Sequence[Pair], entries: Mapping[str, Any], image_dir: str
    ) -> dict[str, Path]:
        """stem -> the starting network's matte, for the binary training labels (band_labels=pseudo)."""
        binary = [pair for pair in train if entries[pair.stem]["kind"] == BINARY]
        if self.settings.band_labels != "pseudo" or not binary:
            return {}
        init_from = self.settings.init_from
        if not init_from:
            raise SettingError(
                "data.band_labels=pseudo labels the band of binary masks with the starting network: set "
                "model.init_from=CHECKPOINT, or data.band_labels=ignore"
            )
        if self.pseudo_labeler is None:
            raise SettingError("data.band_labels=pseudo needs data.pseudo_labeler (conf/data/folder.yaml)")
        settings = getattr(self.pseudo_labeler, "keywords", {})
        key_text = json.dumps([file_signature(Path(init_from).expanduser()), repr(sorted(settings.items()))])
        key = hashlib.blake2b(key_text.encode(), digest_size=6).hexdigest()
        folder = self.root / "pseudo" / key
        paths = {pair.stem: folder / f"{pair.stem}.png" for pair in binary}
        missing = [pair for pair in binary if not paths[pair.stem].is_file()]
        if missing:
            log.info(
                "labelling the band of %d binary mask(s) with %s (kept fixed in training)",
                len(missing),
                init_from,
            )
            predictor = self.pseudo_labeler(path=init_from)
            folder.mkdir(parents=True, exist_ok=True)
            for pair in missing:
                image = read_image(_only_file(self.root / "train" / image_dir, pair.stem))
                matte = np.clip(predictor(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
                write_image(paths[pair.stem], matte)
        for old in (self.root / "pseudo").iterdir():  # the mattes of other starting networks
            if old != folder:
                shutil.rmtree(old)
        return paths

    def _write_labels(self, jobs: Sequence[_LabelJob], entries: Mapping[str, Any]) -> None:
        """Write the labels whose recipe changed (and drop what was derived from the old ones)."""
        todo = [job for job in jobs if entries[job.stem].get(job.role) != job.recipe or not job.out.is_file()]
        if not todo:
            return
        self._remove_derived({job.stem for job in todo}, only_labels=True)
        for folder in {path.parent for job in todo for path in (job.out, job.trimap) if path is not None}:
            folder.mkdir(parents=True, exist_ok=True)
        for _stem, status, reason in run_jobs(todo, self._workers(len(todo)), _write_label):
            if status != "ok":
                raise DatasetLayoutError(reason)
        for job in todo:
            entries[job.stem][job.role] = job.recipe

    def _remove_derived(self, stems: set[str], only_labels: bool = False) -> None:
        """Delete the derived files of ``stems`` (ours: they live under the derived root)."""
        if not stems:
            return
        folders = (
            [
                "train/mask",
                "train/fg",
                "train/fg_blurred",
                "train/bg",
                f"validation/{HELD_OUT}/mask",
                f"validation/{HELD_OUT}/trimap",
            ]
            if only_labels
            else list(DERIVED_DIRS)
        )
        if not only_labels and (self.root / "pseudo").is_dir():
            folders += [str(p.relative_to(self.root)) for p in (self.root / "pseudo").iterdir()]
        for name in folders:
            folder = self.root / name
            if folder.is_dir():
                for path in folder.iterdir():
                    if os.path.splitext(path.name)[0] in stems:
                        path.unlink()

    def _workers(self, jobs: int) -> int:
        requested = self.settings.prepare_workers
        return max(1, min(jobs, default_workers() if requested is None else int(requested)))


class _LabelJob:
    """One label file to write: the normalised matte or mask (and the starting network's band), a trimap."""

    def __init__(
        self,
        stem: str,
        matte: Path,
        kind: str,
        out: Path,
        *,
        role: str,
        trimap: Path | None = None,
        band_kernel: int | None = None,
        pseudo: Path | None = None,
    ) -> None:
        self.stem, self.matte, self.kind, self.out = stem, matte, kind, out
        self.trimap, self.band_kernel, self.pseudo = trimap, band_kernel, pseudo
        self.role = f"label_{role}"  # the manifest entry's key for the recipe of this label
        pseudo_name = pseudo.parent.name if pseudo is not None else None
        self.recipe = [kind, band_kernel, pseudo_name, trimap is not None]


def _label(matte: Path, kind: str) -> np.ndarray:
    """The label of a matte file: as given when soft, 0/255 when binary (0/1 masks and noise included)."""
    label = read_mask(matte)
    if kind == BINARY:
        return binarize(label, int(label.min()), int(label.max()))
    return label


def _write_label(job: _LabelJob) -> tuple[str, str, str]:
    """Write one label (and trimap); a process-pool job, never raises."""
    try:
        label = _label(job.matte, job.kind)
        if job.pseudo is not None and job.band_kernel is not None:
            label = pseudo_labelled(label, job.band_kernel, read_mask(job.pseudo))
        write_image(job.out, label)
        if job.trimap is not None:
            write_image(job.trimap, trimap_from_alpha(label, kernel_for_size(*label.shape)))
        return job.stem, "ok", ""
    except Exception as err:  # reported by the caller with the file
        return job.stem, "failed", f"could not write the label of {job.matte}: {type(err).__name__}: {err}"


def _part(stem: str, held: set[str]) -> str:
    """The part a stem belongs to: ``train`` or ``held-out``."""
    return HELD_OUT if stem in held else "train"


def _link(source: Path, target: Path) -> None:
    """``target`` as a symbolic link to ``source`` (a copy where links cannot be made)."""
    if target.is_symlink() or target.exists():
        if target.is_symlink() and Path(os.readlink(target)) == source:
            return
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.symlink_to(source)
    except OSError:
        shutil.copyfile(source, target)


def _only_file(folder: Path, stem: str) -> Path:
    for path in folder.iterdir():
        if os.path.splitext(path.name)[0] == stem:
            return path
    raise FileNotFoundError(f"no file for {stem} in {folder}")


def _remove_contents(folder: Path) -> None:
    """Empty (or create) a folder of ours."""
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
