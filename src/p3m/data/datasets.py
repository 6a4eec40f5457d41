"""Training and evaluation datasets over paired P3M-10k files.

Training items follow the batch contract (:mod:`p3m.data.transforms.base`) plus ``index`` (int, the
sample's position in the split, sorted by name: which samples a rank trained on is then visible);
evaluation items are full-resolution and unnormalised::

    image     uint8   (3, H, W) RGB
    alpha     float64 (1, H, W) in [0, 1]        mask / 255 in float64, as the official evaluation
    trimap    uint8   (1, H, W) 0/128/255        when the split has trimaps
    facemask  float32 (1, H, W) in [0, 1]        when the split has face masks
    stem      str                                file name without extension
    split     str                                split name, e.g. "P3M-500-P"
    orig_size int64   (2,) = (H, W)              collated to (N, 2)

A split with ``obfuscate`` set (e.g. P3M-500-P with its faces zeroed) obfuscates ``image`` on the fly
inside the face mask minus the trimap's unknown region (the alpha's transition band without trimaps).

Training privacy modes that alter a sample (``obfuscate``, ``cp``) plug in as a ``privacy_hook``
(a privacy mode's ``sample_hook``, :mod:`p3m.privacy.modes`) that runs around the augmentation pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from p3m.data.eval_splits import EvalSplit
from p3m.data.io import check_same_size, read_image, read_map, read_mask, read_rgb
from p3m.data.layout import EvalFiles, TrainFiles, TrainSplit

TrainTransform = Callable[[dict[str, np.ndarray], np.random.Generator], dict[str, torch.Tensor]]
# (sample, pipeline, augmentation generator, privacy generator) -> batch item; see p3m.privacy.training.
PrivacyHook = Callable[
    [dict[str, np.ndarray], TrainTransform, np.random.Generator, np.random.Generator], dict[str, torch.Tensor]
]


class P3M10kTrainDataset(Dataset):
    """Training samples: read the paired files, then run the augmentation pipeline.

    Randomness comes from one ``numpy.random.Generator`` per process, seeded from
    ``torch.initial_seed()`` (which differs per DataLoader worker and epoch and follows
    ``seed_everything``); :func:`p3m.data.datamodule.seed_worker` re-seeds it in each worker, the
    training loader once per epoch in the main process (:mod:`p3m.data.resumable`). Its state
    (:meth:`state_dict`) travels in the loader's snapshots, so a run resumed mid-epoch draws the
    crops the interrupted run would have drawn.

    Args:
        split: the paired files (from :meth:`P3M10kLayout.train_split`).
        transform: the training pipeline (conf/augmentation).
        privacy_hook: optional privacy mode step around the pipeline (face obfuscation, P3M-CP); it
            draws from its own generator, so the augmentation of a sample does not depend on it.
        extra_read_dirs: folders the hook reads (P3M-CP's public source faces), for the audit.

    Attributes:
        read_dirs: every folder this dataset reads from; in PPT mode none holds non-anonymized images.
    """

    def __init__(
        self,
        split: TrainSplit,
        transform: TrainTransform,
        privacy_hook: PrivacyHook | None = None,
        extra_read_dirs: Sequence[Path] = (),
    ) -> None:
        self.files: tuple[TrainFiles, ...] = split.files
        self.read_dirs: tuple[Path, ...] = (*split.read_dirs, *extra_read_dirs)
        self.privacy_mode = split.privacy_mode
        self.transform = transform
        self.privacy_hook = privacy_hook
        self._rng: np.random.Generator | None = None
        self._privacy_rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.files)

    def reseed(self, seed: int) -> None:
        """Restart the random streams (called by the worker init function)."""
        self._rng = np.random.default_rng(seed)
        self._privacy_rng = np.random.default_rng([seed, 1])

    @property
    def rng(self) -> np.random.Generator:
        """This process's generator, created from ``torch.initial_seed()`` on first use."""
        if self._rng is None:
            self._rng = np.random.default_rng(torch.initial_seed())
        return self._rng

    @property
    def privacy_rng(self) -> np.random.Generator:
        """The privacy hook's generator (a separate stream, seeded like :attr:`rng`)."""
        if self._privacy_rng is None:
            self._privacy_rng = np.random.default_rng([torch.initial_seed(), 1])
        return self._privacy_rng

    def state_dict(self) -> dict[str, Any]:
        """The generators' states (``None`` for one not created yet), in types ``weights_only`` loads."""
        return {
            name: None if generator is None else generator.bit_generator.state
            for name, generator in (("rng", self._rng), ("privacy_rng", self._privacy_rng))
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`state_dict` returned."""
        for name, saved in state.items():
            generator = None
            if saved is not None:
                generator = np.random.Generator(getattr(np.random, saved["bit_generator"])())
                generator.bit_generator.state = saved
            setattr(self, f"_{name}", generator)

    def load(self, index: int) -> dict[str, np.ndarray]:
        """The full-resolution maps of sample ``index`` (uint8 numpy, RGB), checked for equal sizes.

        Maps stored as ``.npy`` (fg/bg from ``src/prepare.py fg_bg_format=npy``, every map of the
        packed format from ``pack=true``) come back as read-only memory maps: the pipeline reads only
        the pixels of its crop, and the size check reads none.
        """
        files = self.files[index]
        sample = {"image": read_rgb(files.image), "alpha": read_map(files.alpha)}
        paths = {"image": files.image, "alpha": files.alpha}
        for key in ("fg", "bg"):
            path = getattr(files, key)
            if path is not None:
                sample[key], paths[key] = read_rgb(path), path
        if files.facemask is not None:
            sample["facemask"], paths["facemask"] = read_map(files.facemask), files.facemask
        check_same_size(
            (files.image, sample["image"]), [(paths[k], v) for k, v in sample.items() if k != "image"]
        )
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.privacy_hook is None:
            item = self.transform(self.load(index), self.rng)
        else:
            item = self.privacy_hook(self.load(index), self.transform, self.rng, self.privacy_rng)
        return {**item, "index": index}


class P3M10kEvalDataset(Dataset):
    """Full-resolution evaluation samples of one split (batch size 1: sizes differ).

    Args:
        files: the paired files (from :meth:`P3M10kLayout.eval_files`).
        split: the split they belong to.
    """

    def __init__(self, files: Sequence[EvalFiles], split: EvalSplit) -> None:
        self.files = tuple(files)
        self.split = split

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        files = self.files[index]
        image = read_image(files.image)
        alpha = read_mask(files.alpha, dtype=np.float64)
        others: list[tuple[Path, np.ndarray]] = [(files.alpha, alpha)]
        item: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "alpha": torch.from_numpy(alpha[None]),
        }
        if files.trimap is not None:
            trimap = read_mask(files.trimap)
            others.append((files.trimap, trimap))
            item["trimap"] = torch.from_numpy(trimap[None])
        if files.facemask is not None:
            facemask = read_mask(files.facemask, dtype=np.float32)
            others.append((files.facemask, facemask))
            item["facemask"] = torch.from_numpy(facemask[None])
        check_same_size((files.image, image), others)
        if self.split.obfuscate is not None:
            if files.facemask is None:
                raise ValueError(
                    f"evaluation split {self.split.name} obfuscates faces but {files.stem} has no face mask"
                )
            band = {"trimap": item["trimap"][0].numpy()} if "trimap" in item else {"alpha": alpha}
            image = self.split.obfuscate(image, item["facemask"][0].numpy(), **band)
            item["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        item["stem"] = files.stem
        item["split"] = self.split.name
        item["orig_size"] = torch.tensor(image.shape[:2], dtype=torch.int64)
        return item
