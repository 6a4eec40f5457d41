"""Finding P3M-10k's files: the release layout, what each privacy mode may read, file pairing.

The official release (and our synthetic dataset) looks like::

    <root>/train/blurred_image/*.jpg      face-blurred training images (the only ones PPT may read)
    <root>/train/mask/*.png               alpha mattes
    <root>/train/fg_blurred|fg/, bg/      optional: estimated foreground / background (src/prepare.py),
                                          image files or .npy arrays (fg_bg_format=npy)
    <root>/train/facemask/*.png           optional: face masks
    <root>/train/packed/<folder>/*.npy    optional: the packed training format (src/prepare.py pack=true),
                                          uint8 arrays of the folders above, e.g. packed/blurred_image,
                                          packed/mask, packed/facemask, packed/fg_blurred, packed/bg
    <root>/train/original_image|original/ only in datasets that have non-anonymized training images
    <root>/validation/P3M-500-P/{blurred_image,mask,trimap,facemask}/
    <root>/validation/P3M-500-NP/{original_image,mask,trimap}/

and is also accepted without the ``validation/`` level. Files are paired by stem (the name without
extension), whatever the extension; in the fg/bg folders a ``.npy`` array wins over an image file of
the same stem (it is the faster copy ``src/prepare.py fg_bg_format=npy`` made of it), and for every
training folder an array in ``train/packed/<folder name>/`` wins over the folder's own file of the same
stem (see :mod:`p3m.data.packed`); stems not packed yet are read from the original files. Every problem
raises :class:`DatasetLayoutError` with the path, what is missing and how to fix it.

In PPT mode the training set lists only train/blurred_image (plus mask, fg/bg, facemask); next to
non-anonymized images it refuses a train/fg that may have been estimated from them (only
train/fg_blurred is safe there). P3M-CP (``cp``) reads the same folders as PPT (its public source
faces are listed by :mod:`p3m.privacy.faces`); ``obfuscate`` reads the non-anonymized images and
their train/fg by design and needs train/facemask to obfuscate them on the fly, as does ``cp`` to
paste into the face.

The evaluation splits' table (``data.eval_splits``) is :mod:`p3m.data.eval_splits`.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from p3m.data.eval_splits import EvalSplit
from p3m.data.provenance import Derived, StaleDataError, stale_files
from p3m.utils import conventions
from p3m.utils.docs import WHERE_TO_GET
from p3m.utils.errors import UserError

IMAGE_SUFFIXES = frozenset(conventions.IMAGE_SUFFIXES)
ARRAY_SUFFIX = ".npy"  # uncompressed arrays from src/prepare.py fg_bg_format=npy / pack=true
PACKED_DIR = "packed"  # train/packed/<folder>/<stem>.npy: the packed training format (p3m.data.packed)
FG_BG_SUFFIXES = IMAGE_SUFFIXES | {ARRAY_SUFFIX}
ORIGINAL_IMAGE_DIRS = ("original_image", "original")  # non-anonymized training images (not in P3M-10k)


@dataclass(frozen=True)
class TrainingReads:
    """What a privacy mode lets the training set read; each mode (src/p3m/privacy/modes.py) declares one.

    Attributes:
        mode: the mode's name in messages (``privacy=<mode>``).
        image_dirs: training image folders under ``train/``, the first that exists is read.
        fg_dirs: estimated-foreground folders matching those images, in order of preference.
        anonymized: the images must never be non-anonymized: a ``train/fg`` beside original images
            (possibly their foregrounds, faces intact) is refused.
        needs_facemask: the mode works inside the faces (``train/facemask`` is required).
    """

    mode: str
    image_dirs: tuple[str, ...]
    fg_dirs: tuple[str, ...]
    anonymized: bool
    needs_facemask: bool = False


# The paper's setting (PPT), and the default: face-blurred images and the foregrounds estimated from them.
BLURRED_READS = TrainingReads("ppt", ("blurred_image",), ("fg_blurred", "fg"), anonymized=True)
# Non-anonymized images and their foregrounds (fg_blurred would not match them).
ORIGINAL_READS = TrainingReads("none", ORIGINAL_IMAGE_DIRS, ("fg",), anonymized=False)
_SHOWN = 5  # stems listed in an error message


class DatasetLayoutError(UserError, FileNotFoundError):
    """The dataset on disk does not have the expected folders or files."""


class MissingPartnerError(DatasetLayoutError):
    """Some files have no partner with the same stem (an image without a mask, or the reverse)."""


@dataclass(frozen=True)
class TrainFiles:
    """The files of one training sample."""

    stem: str
    image: Path
    alpha: Path
    fg: Path | None = None
    bg: Path | None = None
    facemask: Path | None = None


@dataclass(frozen=True)
class EvalFiles:
    """The files of one evaluation sample."""

    stem: str
    image: Path
    alpha: Path
    trimap: Path | None = None
    facemask: Path | None = None


@dataclass(frozen=True)
class TrainSplit:
    """The training files and every folder they come from (for the privacy audit)."""

    files: tuple[TrainFiles, ...]
    read_dirs: tuple[Path, ...]
    privacy_mode: str


def _listing(stems: Iterable[str]) -> str:
    stems = sorted(stems)
    shown = ", ".join(stems[:_SHOWN])
    return shown + (f" (and {len(stems) - _SHOWN} more)" if len(stems) > _SHOWN else "")


def index_folder(
    folder: Path, suffixes: Collection[str] = IMAGE_SUFFIXES, prefer: str | None = None
) -> dict[str, Path]:
    """Map stem -> file for the image files of a folder (hidden files and other types are ignored).

    Args:
        folder: the folder to list.
        suffixes: lower-case extensions (with the dot) to list.
        prefer: an extension that wins when a stem also has files with other extensions (``.npy``
            in the fg/bg folders) instead of being a clash.

    Raises:
        DatasetLayoutError: the folder is missing, or two files share a stem (``a.jpg``, ``a.png``)
            and neither has the ``prefer`` extension.
    """
    if not folder.is_dir():
        raise DatasetLayoutError(f"folder not found: {folder}")
    index: dict[str, Path] = {}
    clashes: set[str] = set()
    preferred: set[str] = set()
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            stem, suffix = os.path.splitext(name)
            if name.startswith(".") or suffix.lower() not in suffixes:
                continue
            if suffix.lower() == prefer:
                preferred.add(stem)
            elif stem in index:
                clashes.add(stem)
                continue
            if stem not in index or suffix.lower() == prefer:
                index[stem] = Path(entry.path)
    clashes -= preferred
    if clashes:
        raise DatasetLayoutError(
            f"{folder} has several files with the same stem: {_listing(clashes)}; keep one per sample"
        )
    return dict(sorted(index.items()))


def check_partners(
    primary: Mapping[str, Path],
    primary_dir: Path,
    partner: Mapping[str, Path],
    partner_dir: Path,
    *,
    both_ways: bool,
) -> None:
    """Raise :class:`MissingPartnerError` for unpaired stems of ``primary`` (both_ways: ``partner`` too)."""
    problems = []
    lonely = set(primary) - set(partner)
    if lonely:
        problems.append(
            f"{len(lonely)} file(s) in {primary_dir} have no partner in {partner_dir}: {_listing(lonely)}"
        )
    if both_ways:
        orphans = set(partner) - set(primary)
        if orphans:
            count = len(orphans)
            problems.append(
                f"{count} file(s) in {partner_dir} have no partner in {primary_dir}: {_listing(orphans)}"
            )
    if problems:
        raise MissingPartnerError(
            "; ".join(problems) + ". Files pair by name without extension; add or remove the unmatched ones"
        )


class P3M10kLayout:
    """The P3M-10k release layout under ``root`` (see the module docstring).

    Args:
        root: the dataset folder (``data.root``); ``None`` raises with instructions.
    """

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        if root is None or str(root).strip() in ("", "None", "null"):
            raise DatasetLayoutError(
                "data.root is not set: pass data.root=/path/to/P3M-10k (or export P3M10K_ROOT), "
                f"or try data=synthetic for a generated toy dataset ({WHERE_TO_GET})"
            )
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetLayoutError(
                f"P3M-10k not found at {self.root}: expected train/blurred_image and train/mask; "
                f"set data.root=/path/to/P3M-10k or try data=synthetic ({WHERE_TO_GET})"
            )
        self.train_dir = self.root / "train"

    @property
    def eval_dir(self) -> Path:
        """``<root>/validation`` if it exists, else ``<root>`` (both release variants occur)."""
        validation = self.root / "validation"
        return validation if validation.is_dir() else self.root

    def _missing_train(self, wanted: str) -> DatasetLayoutError:
        present = (
            sorted(p.name for p in self.train_dir.iterdir() if p.is_dir()) if self.train_dir.is_dir() else []
        )
        found = f"found train/{{{', '.join(present)}}}" if present else "found no train/ folder"
        return DatasetLayoutError(
            f"P3M-10k layout incomplete at {self.root}: expected {wanted} ({found}); "
            "set data.root=/path/to/P3M-10k (the folder holding train/ and validation/) or try "
            f"data=synthetic ({WHERE_TO_GET})"
        )

    def train_image_dir(self, reads: TrainingReads = BLURRED_READS) -> Path:
        """The training image folder a privacy mode reads (the first of ``reads.image_dirs`` present)."""
        for name in reads.image_dirs:
            if (self.train_dir / name).is_dir():
                return self.train_dir / name
        if not reads.anonymized:
            where = " or ".join(str(self.train_dir / n) for n in reads.image_dirs)
            raise DatasetLayoutError(
                f"privacy={reads.mode} reads non-anonymized images from {where}, which does not exist: "
                "P3M-10k ships only face-blurred training images; use privacy=ppt or privacy=cp, or a "
                "dataset with original images (data=synthetic)"
            )
        raise self._missing_train(f"train/{reads.image_dirs[0]} and train/mask")

    def fg_dir(self, reads: TrainingReads = BLURRED_READS) -> Path | None:
        """The estimated-foreground folder matching the training images, if any."""
        for name in reads.fg_dirs:
            if (self.train_dir / name).is_dir():
                return self.train_dir / name
        return None

    def train_split(
        self, reads: TrainingReads = BLURRED_READS, *, require_fg_bg: bool = False, load_facemask: bool = True
    ) -> TrainSplit:
        """List and pair the training files.

        Args:
            reads: what the privacy mode may read (its ``reads``; default: PPT's face-blurred images).
            require_fg_bg: also pair fg and bg (the composition loss needs them); they are not read
                otherwise.
            load_facemask: pair train/facemask when that folder exists (modes that need face masks
                always pair it, and fail without it).

        Returns:
            The paired files and the folders they live in.

        Raises:
            DatasetLayoutError: folders missing; MissingPartnerError: files without a partner.
        """
        image_dir = self.train_image_dir(reads)
        mask_dir = self.train_dir / "mask"
        if not mask_dir.is_dir():
            raise self._missing_train("train/mask")
        images, masks = index_folder(image_dir), index_folder(mask_dir)
        if not images:
            raise DatasetLayoutError(f"no images in {image_dir} (expected .jpg/.png files)")
        check_partners(images, image_dir, masks, mask_dir, both_ways=True)
        read_dirs = [image_dir, mask_dir]
        extra: dict[str, dict[str, Path]] = {}
        fg_dir: Path | None = None
        bg_dir: Path | None = None
        if require_fg_bg:
            fg_dir, bg_dir = self.fg_dir(reads), self.train_dir / "bg"
            missing = [" or ".join(f"train/{n}" for n in reads.fg_dirs)] if fg_dir is None else []
            missing += [] if bg_dir.is_dir() else ["train/bg"]
            if missing:
                raise DatasetLayoutError(
                    f"the composition loss needs estimated foregrounds and backgrounds, but {self.root} "
                    f"has no {' and no '.join(missing)}: run `p3m prepare data.root={self.root}` "
                    "to estimate them, or use a loss without composition (loss=no_composition)"
                )
            assert fg_dir is not None  # else `missing` named it above
            original_dirs = [n for n in ORIGINAL_IMAGE_DIRS if (self.train_dir / n).is_dir()]
            if reads.anonymized and fg_dir is not None and fg_dir.name == "fg" and original_dirs:
                # With non-anonymized images present, train/fg may be their foregrounds (faces intact).
                raise DatasetLayoutError(
                    f"privacy={reads.mode} needs foregrounds of the face-blurred images "
                    "(train/fg_blurred), but "
                    f"{self.root} has only train/fg next to train/{original_dirs[0]}, so train/fg may show "
                    f"unblurred faces: run `p3m prepare data.root={self.root}` (writes fg_blurred)"
                )
            for key, folder in (("fg", fg_dir), ("bg", bg_dir)):
                extra[key] = index_folder(folder, FG_BG_SUFFIXES, prefer=ARRAY_SUFFIX)
                check_partners(images, image_dir, extra[key], folder, both_ways=False)
                read_dirs.append(folder)
        facemask_dir = self.train_dir / "facemask"
        if reads.needs_facemask and not facemask_dir.is_dir():
            raise DatasetLayoutError(
                f"privacy={reads.mode} needs face masks in {facemask_dir} (0/255 PNGs named like the "
                "images; P3M-10k's are a separate download, 'P3M-10k facemask'); add them, or use "
                f"privacy=ppt ({WHERE_TO_GET})"
            )
        if (load_facemask or reads.needs_facemask) and facemask_dir.is_dir():
            extra["facemask"] = index_folder(facemask_dir)
            check_partners(images, image_dir, extra["facemask"], facemask_dir, both_ways=False)
            read_dirs.append(facemask_dir)
        originals = {"image": images, "alpha": masks, **extra}
        folders = {
            "image": image_dir,
            "alpha": mask_dir,
            "fg": fg_dir,
            "bg": bg_dir,
            "facemask": facemask_dir,
        }
        chosen = {key: self._packed(index, folders[key], read_dirs) for key, index in originals.items()}
        files = tuple(
            TrainFiles(stem=stem, **{key: index[stem] for key, index in chosen.items()}) for stem in images
        )
        self._check_derived(files, originals, image_dir.name)
        return TrainSplit(files=files, read_dirs=tuple(read_dirs), privacy_mode=reads.mode)

    def _check_derived(
        self, files: Iterable[TrainFiles], originals: Mapping[str, Mapping[str, Path]], image_dir: str
    ) -> None:
        """Refuse files ``p3m prepare`` made from sources that changed since (:mod:`p3m.data.provenance`).

        Packed arrays are checked against the file they copy, ``.npy`` fg/bg against the image and mask
        they were estimated from (or their record), fg/bg image files only when prepare recorded them.
        """
        derived = []
        for item in files:
            for key in ("image", "alpha", "fg", "bg", "facemask"):
                path = getattr(item, key)
                if path is None:
                    continue
                if path.parent.parent.name == PACKED_DIR:
                    derived.append(Derived(path, (originals[key][item.stem],)))
                elif key in ("fg", "bg"):
                    sources = (originals["image"][item.stem], originals["alpha"][item.stem])
                    derived.append(Derived(path, sources, unrecorded_ok=path.suffix != ARRAY_SUFFIX))
        stale = list(stale_files(self.root, derived))
        if not stale:
            return
        path, source = stale[0]
        options = " pack=true" if any(p.parent.parent.name == PACKED_DIR for p, _ in stale) else ""
        if any(p.suffix == ARRAY_SUFFIX and p.parent.parent.name != PACKED_DIR for p, _ in stale):
            options += " fg_bg_format=npy"
        if image_dir != BLURRED_READS.image_dirs[0]:
            options += f" image_dir={image_dir}"
        more = f" (and {len(stale) - 1} more derived file(s))" if len(stale) > 1 else ""
        raise StaleDataError(
            f"{path} was made from {source}, which changed since{more}: training would read outdated "
            f"data. Refresh it with `p3m prepare data.root={self.root}{options}` (it remakes only what "
            "changed), or delete the derived file to read the source instead"
        )

    def _packed(self, index: dict[str, Path], folder: Path | None, read_dirs: list[Path]) -> dict[str, Path]:
        """``index`` with each stem's array from ``train/packed/<folder name>/`` where there is one.

        Pairing (and its errors) is decided on the original folders, so a partly packed dataset
        (an interrupted ``pack=true``) reads the arrays it has and the original files for the rest.
        """
        if folder is None:
            return index
        packed_dir = self.train_dir / PACKED_DIR / folder.name
        if not packed_dir.is_dir():
            return index
        arrays = index_folder(packed_dir, {ARRAY_SUFFIX})
        packed = {stem: arrays[stem] for stem in index if stem in arrays}
        if packed:
            read_dirs.append(packed_dir)
        if len(packed) == len(index) and folder in read_dirs:  # read_dirs lists what is actually read
            read_dirs.remove(folder)
        return {stem: packed.get(stem, path) for stem, path in index.items()}

    def eval_files(self, split: EvalSplit) -> list[EvalFiles]:
        """List and pair the files of one evaluation split.

        Raises:
            DatasetLayoutError: a configured folder is missing; MissingPartnerError: unpaired files.
        """
        base = self.eval_dir
        image_dir, mask_dir = base / split.image_dir, base / split.mask_dir
        for key, folder in (("image_dir", image_dir), ("mask_dir", mask_dir)):
            if not folder.is_dir():
                raise DatasetLayoutError(
                    f"evaluation split {split.name}: {key} {folder} not found (looked under {base}); "
                    f"fix data.eval_splits or data.root"
                )
        images, masks = index_folder(image_dir), index_folder(mask_dir)
        if not images:
            raise DatasetLayoutError(f"evaluation split {split.name}: no images in {image_dir}")
        check_partners(images, image_dir, masks, mask_dir, both_ways=True)
        extra: dict[str, dict[str, Path]] = {}
        if split.trimap_dir is not None:
            trimap_dir = base / split.trimap_dir
            if not trimap_dir.is_dir():
                raise DatasetLayoutError(
                    f"evaluation split {split.name}: trimap_dir {trimap_dir} not found; "
                    "set its trimap_dir to null if the split has no trimaps"
                )
            extra["trimap"] = index_folder(trimap_dir)
            check_partners(images, image_dir, extra["trimap"], trimap_dir, both_ways=False)
        if split.facemask_dir is not None and (base / split.facemask_dir).is_dir():
            facemask_dir = base / split.facemask_dir
            extra["facemask"] = index_folder(facemask_dir)
            check_partners(images, image_dir, extra["facemask"], facemask_dir, both_ways=False)
        elif split.obfuscate is not None:
            raise DatasetLayoutError(
                f"evaluation split {split.name} obfuscates faces inside its face masks, but facemask_dir "
                f"{base / str(split.facemask_dir)} was not found: add the face masks (P3M-10k's are a "
                f"separate download, {WHERE_TO_GET}) or remove the split"
            )
        return [
            EvalFiles(stem=stem, image=path, alpha=masks[stem], **{k: v[stem] for k, v in extra.items()})
            for stem, path in images.items()
        ]
