"""A fixed panel of validation predictions, logged to W&B as images.

Privacy: only evaluation splits whose faces are anonymized are logged unless ``log_unblurred`` is
set, so photos of identifiable people do not reach a hosted service by default.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


class WandbImagePanel(Callback):
    """Log image, ground truth, predicted trimap, local and fusion alpha for a few samples per split.

    Args:
        num_samples: Samples per split (the first ones of each evaluation loader, so the panel is fixed).
        every_n_validations: Log at every n-th validation run.
        log_unblurred: Also log splits whose faces are not anonymized (e.g. P3M-500-NP).
        max_side: Longest side of the logged images (smaller uploads).
    """

    def __init__(
        self,
        num_samples: int = 4,
        every_n_validations: int = 1,
        log_unblurred: bool = False,
        max_side: int = 512,
    ) -> None:
        self.num_samples = num_samples
        self.every_n_validations = max(1, every_n_validations)
        self.log_unblurred = log_unblurred
        self.max_side = max_side
        self._validations = 0
        self.panel: dict[str, list[list[np.ndarray]]] = {}
        """The rows of the current (or last) validation by split (image, alpha, trimap, local, fusion)."""

    def _allowed_splits(self, trainer: Trainer) -> set[str]:
        datamodule = trainer.datamodule  # type: ignore[attr-defined]  # set by Lightning's data connector
        splits = getattr(datamodule, "eval_splits", None) or []
        return {split.name for split in splits if self.log_unblurred or split.anonymized}

    def _active(self, trainer: Trainer) -> bool:
        return (
            not trainer.sanity_checking
            and any(isinstance(lg, WandbLogger) for lg in trainer.loggers)
            and self._validations % self.every_n_validations == 0
        )

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start a new panel."""
        self.panel = {}

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Mapping[str, Any],
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Keep the first ``num_samples`` predictions of every allowed split."""
        if batch_idx >= self.num_samples or outputs is None or not self._active(trainer):
            return
        split = batch["split"][0] if isinstance(batch["split"], (list, tuple)) else batch["split"]
        if split not in self._allowed_splits(trainer):
            return
        image = batch["image"][0].permute(1, 2, 0).cpu().numpy().astype(np.uint8)
        maps = [batch["alpha"][0, 0], outputs.trimap.float() / 255.0, outputs.local_alpha, outputs.alpha]
        row = [image] + [_to_uint8(m) for m in maps]
        self.panel.setdefault(split, []).append([_shrink(x, self.max_side) for x in row])

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Send the panel to every W&B logger."""
        if self._active(trainer) and self.panel:
            for logger in trainer.loggers:
                if not isinstance(logger, WandbLogger):
                    continue
                for split, rows in self.panel.items():
                    images = [x for row in rows for x in row]
                    captions = [c for _ in rows for c in ("image", "alpha (gt)", "trimap", "local", "fusion")]
                    logger.log_image(
                        key=f"panel/{split}", images=images, caption=captions, step=trainer.global_step
                    )
        if not trainer.sanity_checking:
            self._validations += 1


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _shrink(x: np.ndarray, max_side: int) -> np.ndarray:
    import cv2

    h, w = x.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return x
    return cv2.resize(x, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
