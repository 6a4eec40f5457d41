"""P3M10kDataModule: training and evaluation data for P3M-10k (or the synthetic stand-in).

Wiring (conf/data/p3m10k.yaml)::

    data = hydra.utils.instantiate(cfg.data, require_fg_bg=loss.needs_fg_bg)
    trainer.fit(model, datamodule=data)

Validation and test return one DataLoader per evaluation split, in the order of
``data.eval_splits``, with batch size 1 (full-resolution images differ in size). The
LightningModule maps ``dataloader_idx`` to ``eval_splits[dataloader_idx]`` and logs under its
``prefix`` and the stage: e.g. ``val/p/sad`` (validation) and ``test/p/sad`` (test) for P3M-500-P.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.fabric.utilities.data import AttributeDict
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Sampler, get_worker_info

from p3m.data.datasets import P3M10kEvalDataset, P3M10kTrainDataset, TrainTransform
from p3m.data.eval_splits import EvalSplit, Obfuscator, parse_eval_splits
from p3m.data.layout import BLURRED_READS, P3M10kLayout, TrainSplit
from p3m.data.resumable import EpochSampler, ResumableLoader
from p3m.data.synthetic import ensure_synthetic_dataset
from p3m.data.transforms import PaperTransform
from p3m.utils.errors import SettingError

log = logging.getLogger(__name__)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy, ``random`` and the dataset's generator per worker.

    ``torch.initial_seed()`` in a worker is the loader's base seed plus the worker id, so every
    worker draws different augmentations, reproducibly for a given seed. OpenCV is kept
    single-threaded: the workers already use every core.
    """
    seed = torch.initial_seed()
    np.random.seed(seed % 2**32)
    random.seed(seed)
    cv2.setNumThreads(0)
    info = get_worker_info()
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(seed)


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def eval_sampler(dataset: Any, split_name: str) -> Sampler | None:
    """Under DDP, every rank evaluates every ``world_size``-th image and no image twice; else None.

    Lightning's default DistributedSampler pads the last round with repeated images so all ranks get
    the same count, which changes the per-image means. This one leaves the ranks one image apart
    (each runs at least one, so DDP's first-forward buffer sync lines up), and the metrics' sum/count
    states are summed over ranks: the numbers equal a single-device run.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    world = dist.get_world_size()
    if 0 < len(dataset) < world:
        raise ValueError(
            f"evaluation split {split_name} has {len(dataset)} images but the run has {world} processes, "
            "and each needs one: evaluate on fewer devices (trainer.devices=1) or more images "
            "(data.limit_eval_samples)"
        )
    return UnrepeatedDistributedSampler(dataset, shuffle=False)


class P3M10kDataModule(L.LightningDataModule):
    """P3M-10k training set (augmented) and evaluation splits (full resolution).

    Args:
        root: dataset folder in the release layout; ``None`` raises with instructions.
        augmentation: the training pipeline (an instantiated conf/augmentation object); defaults
            to the paper's.
        privacy: the privacy mode (an instantiated conf/privacy object, :mod:`p3m.privacy.modes`):
            its ``reads`` decide the training folders, its ``sample_hook`` the step around each
            sample's augmentation; None trains as PPT (face-blurred images only, no extra step).
        eval_splits: evaluation split table (``name``, ``prefix``, ``image_dir``, ``mask_dir``,
            ``trimap_dir``, ``facemask_dir``, optional ``obfuscate``), used for validation and test.
        obfuscator: builds the face obfuscation of the splits with an ``obfuscate`` entry from its
            keys (conf: a partial ``p3m.privacy.obfuscate.FaceObfuscator``).
        extra_eval_splits: more splits appended to ``eval_splits`` (conf/data/extra_splits, e.g.
            P3M-500-P with its faces zeroed and mosaicked).
        batch_size: training batch size (evaluation always uses 1).
        num_workers: DataLoader worker processes per loader.
        pin_memory: pin host memory when CUDA is available.
        persistent_workers: keep the training loader's workers alive between epochs (only with
            ``num_workers > 0``; evaluation loaders never hold theirs). Their augmentation streams
            then run on across epochs, which a resume from an epoch boundary does not repeat.
        require_fg_bg: load estimated fg/bg (the composition loss needs them); missing folders
            then raise with the command that makes them. If false, batches have no fg/bg.
        load_facemask: add ``facemask`` to training batches when train/facemask exists.
        train_size: training side length; overrides the augmentation's ``out_size`` when set.
        crop_sizes: crop sides; override the augmentation's ``crop_sizes`` when set.
        limit_train_samples: use only the first N training samples (sorted by name).
        limit_eval_samples: use only the first N samples of each evaluation split.
        seed: seed of the training order and of the augmentation streams (with the epoch and the
            rank, :mod:`p3m.data.resumable`); ``None``: the run's global seed (rank 0's).
        synthetic: parameters of :func:`p3m.data.synthetic.ensure_synthetic_dataset` (num_train,
            num_test, size, seed, ...); when set, the dataset is generated at ``root`` on first use.
    """

    hparams: AttributeDict  # what Lightning's save_hyperparameters() stores

    def __init__(
        self,
        root: str | Path | None = None,
        augmentation: TrainTransform | None = None,
        privacy: Any = None,
        eval_splits: Sequence[Mapping[str, Any]] = (),
        extra_eval_splits: Sequence[Mapping[str, Any]] = (),
        obfuscator: Callable[..., Obfuscator] | None = None,
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
        synthetic: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # Objects stay out of the checkpoint (it loads with weights_only=True); the mode is recorded as
        # plain values.
        self.save_hyperparameters(ignore=["augmentation", "privacy", "obfuscator"], logger=False)
        if privacy is not None and isinstance(privacy, Mapping):
            raise TypeError(
                "data.privacy must be an instantiated privacy mode (conf/privacy/*.yaml with _target_, "
                f"e.g. p3m.privacy.modes.PPT), got the mapping {dict(privacy)}"
            )
        self.hparams["privacy"] = privacy.describe() if privacy is not None else {"mode": BLURRED_READS.mode}
        if augmentation is None:
            augmentation = PaperTransform()
        if isinstance(augmentation, Mapping) or not callable(augmentation):
            raise TypeError(
                "data.augmentation must be an instantiated training pipeline (conf/augmentation/*.yaml with "
                f"_target_), got {type(augmentation).__name__}"
            )
        if train_size is not None or crop_sizes is not None:
            if not hasattr(augmentation, "with_geometry"):
                raise TypeError(f"{type(augmentation).__name__} cannot change its size (no with_geometry)")
            augmentation = augmentation.with_geometry(  # type: ignore[attr-defined]  # hasattr above
                crop_sizes=list(crop_sizes) if crop_sizes is not None else None, out_size=train_size
            )
        for key, value in (("batch_size", batch_size), ("num_workers", num_workers)):
            if not isinstance(value, int) or value < (1 if key == "batch_size" else 0):
                raise ValueError(
                    f"data.{key} must be an integer >= {1 if key == 'batch_size' else 0}, got {value!r}"
                )
        self.augmentation = augmentation
        self.privacy = privacy
        self.eval_splits: list[EvalSplit] = parse_eval_splits([*eval_splits, *extra_eval_splits], obfuscator)
        self.synthetic = dict(synthetic) if synthetic is not None else None
        self.train_set: P3M10kTrainDataset | None = None
        self.eval_sets: list[P3M10kEvalDataset] | None = None

    @property
    def read_dirs(self) -> tuple[Path, ...]:
        """Folders the training dataset reads (after ``setup``), for the privacy audit; with P3M-CP
        the public source faces' folders too."""
        if self.train_set is None:
            raise RuntimeError("read_dirs is known after setup('fit')")
        return self.train_set.read_dirs

    # -- Lightning hooks ----------------------------------------------------------------------------

    def _ensure_synthetic(self) -> None:
        if self.synthetic is None:
            return
        if self.hparams.root is None:
            raise ValueError(
                "data.synthetic is set but data.root is null: set data.root to where it should live"
            )
        params = dict(self.synthetic)
        if "size" in params and not isinstance(params["size"], int):
            params["size"] = tuple(int(v) for v in params["size"])
        ensure_synthetic_dataset(self.hparams.root, **params)

    def prepare_data(self) -> None:
        """Generate the synthetic dataset (rank 0 only; a no-op for P3M-10k)."""
        self._ensure_synthetic()

    def setup(self, stage: str | None = None) -> None:
        """Find, pair and check the files; raise with a fix if anything is missing."""
        self._ensure_synthetic()  # idempotent; covers direct setup() calls without prepare_data
        layout = P3M10kLayout(self.hparams.root)
        if stage in (None, "fit") and self.train_set is None:
            split = layout.train_split(
                self.privacy.reads if self.privacy is not None else BLURRED_READS,
                require_fg_bg=self.hparams.require_fg_bg,
                load_facemask=self.hparams.load_facemask,
            )
            limit = self.hparams.limit_train_samples
            if limit is not None:
                split = TrainSplit(
                    files=split.files[:limit], read_dirs=split.read_dirs, privacy_mode=split.privacy_mode
                )
            if len(split.files) < self.hparams.batch_size:
                raise SettingError(
                    f"{len(split.files)} training samples at {layout.root} but data.batch_size="
                    f"{self.hparams.batch_size} and incomplete batches are dropped: lower data.batch_size"
                )
            hook, hook_dirs = (
                self.privacy.sample_hook(layout.root) if self.privacy is not None else (None, ())
            )
            self.train_set = P3M10kTrainDataset(split, self.augmentation, hook, hook_dirs)
            log.info(
                "training on %d samples from %s (privacy mode %s)",
                len(split.files),
                ", ".join(str(d) for d in self.train_set.read_dirs),
                split.privacy_mode,
            )
        if stage in (None, "fit", "validate", "test") and self.eval_sets is None:
            limit = self.hparams.limit_eval_samples
            self.eval_sets = [
                P3M10kEvalDataset(layout.eval_files(split)[:limit], split) for split in self.eval_splits
            ]

    def _order_seed(self) -> int:
        """``data.seed``, else rank 0's global seed (``seed``): every rank must shuffle alike."""
        if self.hparams.seed is not None:
            return int(self.hparams.seed)
        seed = [torch.initial_seed() % 2**63]  # rank 0's is the run's seed (train.py: rank r gets seed + r)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast_object_list(seed, src=0)
        return int(seed[0])

    def train_dataloader(self) -> ResumableLoader:
        """Shuffled, incomplete last batch dropped; each rank its share; resumable mid-epoch."""
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None  # setup("fit") made it
        distributed = dist.is_available() and dist.is_initialized()
        sampler = EpochSampler(
            self.train_set,
            num_replicas=dist.get_world_size() if distributed else 1,
            rank=_rank(),
            shuffle=True,
            seed=self._order_seed(),
        )
        workers = self.hparams.num_workers
        return ResumableLoader(
            self.train_set,
            sampler=sampler,  # by name: Lightning's overfit_batches rebuilds the loader with its own
            batch_size=self.hparams.batch_size,
            drop_last=True,
            num_workers=workers,
            pin_memory=bool(self.hparams.pin_memory) and torch.cuda.is_available(),
            persistent_workers=bool(self.hparams.persistent_workers) and workers > 0,
            worker_init_fn=seed_worker,
        )

    def _eval_loader(self, dataset: Any, sampler: Sampler | None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=1,
            sampler=sampler,
            num_workers=self.hparams.num_workers,
            pin_memory=bool(self.hparams.pin_memory) and torch.cuda.is_available(),
            worker_init_fn=seed_worker,
            # its own generator: a validation that a resumed run restarts must not draw from the
            # global one more often than the uninterrupted run did
            generator=torch.Generator().manual_seed(0),
        )

    def _eval_loaders(self) -> list[DataLoader]:
        if self.eval_sets is None:
            self.setup("validate")
        return [
            self._eval_loader(dataset, eval_sampler(dataset, split.name))
            for dataset, split in zip(self.eval_sets or [], self.eval_splits, strict=True)
        ]

    def val_dataloader(self) -> list[DataLoader]:
        """One loader per evaluation split, in the order of ``data.eval_splits``."""
        return self._eval_loaders()

    def test_dataloader(self) -> list[DataLoader]:
        """The same splits as validation (P3M-10k has no separate test set)."""
        return self._eval_loaders()
