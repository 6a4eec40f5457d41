"""``data=folder``: train on a folder of portraits and a folder of their mattes (or binary masks).

One command fine-tunes on them::

    p3m train data=folder data.images=photos/ data.mattes=mattes/ model.init_from=weights.pth

Before anything trains, :meth:`FolderDataModule.prepare_data` (process rank 0) pairs the two folders
by stem and reads every pair (every bad pair in one report), holds some stems out for validation,
decides per label whether it is a soft matte or a binary mask (:mod:`p3m.data.labels`,
``data.labels``), and derives a P3M-10k-style dataset from them in its own folder,
``<data.cache_dir>/<images folder name>-<hash of both paths>``
(:class:`~p3m.data.folder_derived.DerivedFolder`): labels, anonymised copies when the privacy mode
reads face-blurred images, fg/bg, the held-out part. The P3M-10k data module then trains and evaluates
on that folder, unchanged, so the privacy audit and the evaluation are the paper's.

A binary training mask keeps its label outside its transition band and (``band_labels=ignore``)
marks the band as unsupervised with a batch key ``alpha_known`` that the loss reads
(:class:`~p3m.data.band_dataset.BandLabelDataset`), or (``pseudo``) carries the starting network's
matte there.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.distributed as dist

from p3m.data.band_dataset import BandLabelDataset
from p3m.data.datamodule import P3M10kDataModule
from p3m.data.datasets import P3M10kTrainDataset, TrainTransform
from p3m.data.eval_splits import parse_eval_splits
from p3m.data.folder_derived import (
    HELD_OUT,
    MANIFEST_NAME,
    Anonymizer,
    DerivedFolder,
    PseudoLabeler,
    band_kernel_of,
)
from p3m.data.labels import BAND_LABELS, LABEL_MODES, SOFT, resolve_band_labels
from p3m.data.layout import BLURRED_READS
from p3m.utils.errors import MissingInputError, SettingError

log = logging.getLogger(__name__)


class FolderDataModule(P3M10kDataModule):
    """A folder of portraits and a folder of their mattes or masks (see the module docstring).

    Args:
        images: the portraits (any image suffix the project reads).
        mattes: their alpha mattes or binary masks, named like the images (any image suffix).
        cache_dir: where the derived dataset of each folder pair lives (a subfolder per pair).
        val_fraction: share of the pairs held out for validation (at least one, drawn by a seeded
            hash of the stems: :func:`~p3m.data.folder_pairs.held_out_stems`).
        val_stems: the held-out stems instead: a list, or a text file with one stem per line.
        split_seed: seed of the held-out draw.
        labels: ``auto`` (each label as detected), ``soft`` (all alpha mattes) or ``binary`` (all masks).
        band_kernel: the band of a binary mask: elliptic kernel in px at a 1080 px short side, scaled.
        band_labels: inside a binary mask's band: ``ignore`` (no alpha supervision), ``pseudo`` (the
            starting network's matte, computed once before training and kept fixed) or ``auto``
            (``pseudo`` with ``init_from``, else ``ignore``: :func:`~p3m.data.labels.resolve_band_labels`).
        skip_bad_pairs: train without the pairs that cannot be used (still listed) instead of stopping.
        prepare_workers: processes for reading, labels and fg/bg; None: one per core.
        init_from: the starting network's checkpoint (``model.init_from``), for ``band_labels=pseudo``.
        anonymizer: runs the face anonymiser over a folder (privacy modes that read blurred images or
            face masks); conf: ``p3m.privacy.anonymizer.Anonymizer``.
        pseudo_labeler: loads ``init_from`` as a predictor (conf: partial ``Predictor.from_checkpoint``).
        val_prefix: the held-out split's prefix in metric names (``val/<prefix>/sad``).
        augmentation: as :class:`~p3m.data.datamodule.P3M10kDataModule`, like ``privacy``,
            ``batch_size``, ``num_workers``, ``pin_memory``, ``persistent_workers``,
            ``require_fg_bg``, ``load_facemask``, ``train_size``, ``crop_sizes``,
            ``limit_train_samples``, ``limit_eval_samples`` and ``seed``; a batch larger than the
            training part is reduced to it, with a warning.
    """

    def __init__(
        self,
        images: str | Path | None = None,
        mattes: str | Path | None = None,
        cache_dir: str | Path = "data/folders",
        val_fraction: float = 0.1,
        val_stems: Sequence[str] | str | None = None,
        split_seed: int = 0,
        labels: str = "auto",
        band_kernel: int = 61,
        band_labels: str = "auto",
        skip_bad_pairs: bool = False,
        prepare_workers: int | None = None,
        init_from: str | None = None,
        anonymizer: Anonymizer | None = None,
        pseudo_labeler: PseudoLabeler | None = None,
        val_prefix: str = "p",
        augmentation: TrainTransform | None = None,
        privacy: Any = None,
        batch_size: int = 8,
        num_workers: int = 4,
        pin_memory: bool = True,
        persistent_workers: bool = False,
        require_fg_bg: bool = False,
        load_facemask: bool = True,
        train_size: int | None = None,
        crop_sizes: Sequence[int] | None = None,
        limit_train_samples: int | None = None,
        limit_eval_samples: int | None = None,
        seed: int | None = None,
    ) -> None:
        self.images, self.mattes = _folders(images, mattes)
        _check_choice("labels", labels, LABEL_MODES)
        _check_choice("band_labels", band_labels, BAND_LABELS)
        if val_stems is None and not 0.0 < float(val_fraction) < 1.0:
            raise SettingError(f"data.val_fraction={val_fraction}: a share of the pairs, between 0 and 1")
        if isinstance(band_kernel, bool) or not isinstance(band_kernel, int) or band_kernel < 3:
            raise SettingError(f"data.band_kernel={band_kernel!r}: a kernel size in px (at 1080 px), >= 3")
        # the hyperparameters (saved from these arguments by the base class) hold plain values only
        images, mattes, cache_dir = str(self.images), str(self.mattes), str(cache_dir)
        pair_key = hashlib.blake2b(f"{self.images}\n{self.mattes}".encode(), digest_size=4).hexdigest()
        root = Path(cache_dir).expanduser().resolve() / f"{self.images.name}-{pair_key}"
        super().__init__(
            root=str(root),  # plain values only in the checkpoint's hyperparameters
            augmentation=augmentation,
            privacy=privacy,
            eval_splits=[_held_out_split(val_prefix, trimaps=False)],
            batch_size=batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            require_fg_bg=require_fg_bg,
            load_facemask=load_facemask,
            train_size=train_size,
            crop_sizes=crop_sizes,
            limit_train_samples=limit_train_samples,
            limit_eval_samples=limit_eval_samples,
            seed=seed,
        )
        # Objects stay out of the checkpoint's hyperparameters (it loads with weights_only=True).
        for key in ("anonymizer", "pseudo_labeler"):
            self._hparams.pop(key, None)
            self._hparams_initial.pop(key, None)  # type: ignore[attr-defined]  # set by save_hyperparameters
        self.hparams.band_labels = resolve_band_labels(band_labels, init_from)  # what the data path reads
        self.anonymizer = anonymizer
        self.pseudo_labeler = pseudo_labeler
        self.root = root
        self._manifest: dict[str, Any] | None = None
        self._prepared_training = False

    # -- Lightning hooks ----------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Pair, check, split and derive the dataset (see the module docstring); rank 0 only."""
        self._prepare(training=self._fitting())

    def setup(self, stage: str | None = None) -> None:
        """The P3M-10k module's setup on the derived folder, with binary labels in binary-label mode."""
        training = stage in (None, "fit")
        if self._manifest is None or (training and not self._prepared_training):
            distributed = dist.is_available() and dist.is_initialized()
            if distributed and (self.root / MANIFEST_NAME).is_file():  # written by rank 0's prepare_data
                self._manifest = json.loads((self.root / MANIFEST_NAME).read_text())
            else:
                self._prepare(training=training)
        manifest = self._manifest
        assert manifest is not None
        entries = manifest["stems"]
        all_soft = all(entries[stem]["kind"] == SOFT for stem in manifest["held_out"])
        self.eval_splits = parse_eval_splits([_held_out_split(self.hparams.val_prefix, trimaps=all_soft)])
        if training and self.train_set is None:
            self._fit_batch_size(len(manifest["train"]))
        super().setup(stage)
        if training and isinstance(self.train_set, P3M10kTrainDataset):
            at_1080 = int(self.hparams.band_kernel)
            kernels = [band_kernel_of(entries[files.stem], at_1080) for files in self.train_set.files]
            if any(k is not None for k in kernels):
                ignore = self.hparams.band_labels == "ignore"
                self.train_set = BandLabelDataset(self.train_set, kernels, mark_known=ignore)  # type: ignore[assignment]

    # -- preparation ---------------------------------------------------------------------------------

    def _prepare(self, training: bool) -> None:
        privacy = self.privacy.reads if self.privacy is not None else BLURRED_READS
        derived = DerivedFolder(
            self.images, self.mattes, self.root, self.hparams, privacy, self.anonymizer, self.pseudo_labeler
        )
        self._manifest = derived.prepare(training)
        self._prepared_training = self._prepared_training or training

    def _fitting(self) -> bool:
        """Whether Lightning is fitting (or nothing runs us): validate and test need no training data."""
        return self.trainer is None or self.trainer.state.fn == "fit"

    def _fit_batch_size(self, train_count: int) -> None:
        """A batch larger than the training part is reduced to it (incomplete batches are dropped)."""
        limit = self.hparams.limit_train_samples
        count = min(train_count, limit) if limit is not None else train_count
        if self.hparams.batch_size > count:
            log.warning(
                "data.batch_size=%d is larger than the %d training image(s): training with batches of %d",
                self.hparams.batch_size,
                count,
                count,
            )
            self.hparams.batch_size = count


def _held_out_split(prefix: str, *, trimaps: bool) -> dict[str, Any]:
    return {
        "name": HELD_OUT,
        "prefix": prefix,
        "image_dir": f"{HELD_OUT}/image",
        "mask_dir": f"{HELD_OUT}/mask",
        "trimap_dir": f"{HELD_OUT}/trimap" if trimaps else None,
        "facemask_dir": None,
        "anonymized": False,  # the held-out images as given: uploaded to W&B only on request
    }


def _folders(images: Any, mattes: Any) -> tuple[Path, Path]:
    if images is None or mattes is None:
        raise SettingError(
            "data=folder needs data.images=DIR (your portraits) and data.mattes=DIR (their alpha mattes or "
            "masks, named like the images)"
        )
    folders = []
    for key, value in (("images", images), ("mattes", mattes)):
        path = Path(str(value)).expanduser().resolve()
        if not path.is_dir():
            raise MissingInputError(f"data.{key}={value}: no such folder")
        folders.append(path)
    if folders[0] == folders[1]:
        raise SettingError(
            "data.images and data.mattes are the same folder: put the mattes in their own folder"
        )
    return folders[0], folders[1]


def _check_choice(key: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SettingError(f"data.{key}={value!r}: choose one of {', '.join(choices)}")
