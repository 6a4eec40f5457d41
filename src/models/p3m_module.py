"""The LightningModule that trains and validates P3M-Net."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from lightning import LightningModule
from torch import Tensor, nn
from torchmetrics import MetricCollection

from src.metrics.collection import matting_metrics
from src.metrics.matting import METRIC_CLASSES
from src.metrics.privacy import SADPrivacy
from src.models.checkpoints import load_checkpoint_state, require_backbone
from src.models.components.p3mnet import P3MNet
from src.models.performance import compile_in_place, enable_activation_checkpointing, to_channels_last
from src.models.test_time import TestTimeOutput, infer_alpha

log = logging.getLogger(__name__)


class P3MLitModule(LightningModule):
    """Trains P3M-Net with the paper's losses and validates it with matting metrics per split.

    Args:
        net: The network (``P3MNet``); its forward returns the official 6-tuple as a named tuple.
        loss: ``P3MLoss``: returns a dict of named weighted terms and ``total``.
        optimizer: A partially applied optimizer; parameters are passed here.
        scheduler: A partially applied LR scheduler or None (the paper: constant LR).
        val_strategy: Test-time strategy of validation (``resize``, ``hybrid``, ``full``).
        val_resize_mode: ``paper`` (scikit-image, CPU) or ``fast`` (on device) resizing.
        val_metrics: Metrics computed at every validation.
        heavy_metrics: Slower metrics (Grad, Conn) computed every ``heavy_every_n_epochs`` and at test.
        heavy_every_n_epochs: Period of the heavy metrics; 0 disables them during validation.
        init_from: Checkpoint whose network weights start this run (ours or the authors').
        channels_last: Store weights and training images channels-last (NHWC): faster convolutions on
            GPUs and on CPUs with oneDNN; max-pool near-ties may break differently.
        compile: ``torch.compile`` the network (True, or a dict of ``torch.compile`` arguments).
        activation_checkpointing: Recompute the transformer blocks' activations in the backward pass
            (Swin-T, ViTAE-S): less memory per batch for about a third more compute.
        privacy: The privacy mode (conf/privacy, :mod:`src.privacy.modes`): its ``training_forward``
            runs the network in training (P3M-FCP pastes features inside it); None: a plain forward.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        val_strategy: str = "resize",
        val_resize_mode: str = "fast",
        val_metrics: Sequence[str] = ("sad", "mse", "mad", "sad_t", "mse_t", "mad_t", "sad_fg", "sad_bg"),
        heavy_metrics: Sequence[str] = ("grad", "conn"),
        heavy_every_n_epochs: int = 5,
        init_from: str | None = None,
        channels_last: bool = False,
        compile: bool | Mapping[str, Any] = False,
        activation_checkpointing: bool = False,
        privacy: Any = None,
    ) -> None:
        super().__init__()
        # Objects stay out of the checkpoint so it loads with torch.load(weights_only=True); the privacy
        # mode is recorded as plain values.
        self.save_hyperparameters(logger=False, ignore=["net", "loss", "optimizer", "scheduler", "privacy"])
        self.hparams["privacy"] = privacy.describe() if privacy is not None else None
        self.privacy = privacy
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        if init_from:
            checkpoint = load_checkpoint_state(init_from)
            if isinstance(net, P3MNet):  # a clear refusal instead of a missing-keys list of every layer
                name = net.backbone_name
                fix = f"set backbone={checkpoint.backbone}, or model.init_from= a {name} checkpoint"
                require_backbone(checkpoint, name, f"model.init_from={init_from}", fix=fix)
            self.net.load_state_dict(checkpoint.state_dict)
            log.info("initialised the network from %s (%s weights)", init_from, checkpoint.source)
        if activation_checkpointing:
            enable_activation_checkpointing(self.net)
        if channels_last:
            to_channels_last(self.net)
        compile_in_place(self.net, compile)
        self.val_metrics = nn.ModuleDict()
        self.heavy_val_metrics = nn.ModuleDict()
        self.privacy_val_metrics = nn.ModuleDict()  # sad_privacy of the splits with face masks
        self._split_names: list[str] = []

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        """Create one metric collection per evaluation split of the datamodule."""
        splits = getattr(self.trainer.datamodule, "eval_splits", None) if self._trainer else None
        if not splits or self._split_names:
            return
        for split in splits:
            self._split_names.append(split.name)
            # splits without trimaps (e.g. whole-image-only test sets) get the whole-image metrics only
            usable = [
                n for n, metric in METRIC_CLASSES.items() if split.trimap_dir or not metric.needs_trimap
            ]
            cheap = [n for n in self.hparams.val_metrics if n in usable]
            heavy = [n for n in self.hparams.heavy_metrics if n in usable]
            self.val_metrics[split.name] = matting_metrics(cheap, prefix=f"{split.prefix}/")
            if heavy:
                self.heavy_val_metrics[split.name] = matting_metrics(heavy, prefix=f"{split.prefix}/")
            if split.facemask_dir:  # SAD inside the face, e.g. val/p/sad_privacy (needs the face masks)
                self.privacy_val_metrics[split.name] = MetricCollection(
                    {"sad_privacy": SADPrivacy()}, prefix=f"{split.prefix}/"
                )

    # --------------------------------------------------------------- training
    def forward(self, image: Tensor) -> Any:
        """Run the network on an ImageNet-normalised batch."""
        return self.net(image)

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        """One optimisation step on a dict batch; logs every loss term as ``train/loss/<term>``."""
        image = batch["image"]
        if self.hparams.get("channels_last"):
            image = image.contiguous(memory_format=torch.channels_last)
        # e.g. privacy=cp level=feature (P3M-FCP) pastes public-face features between encoder stages
        output = (
            self.net(image) if self.privacy is None else self.privacy.training_forward(self.net, image, batch)
        )
        terms = self.loss(output, batch)
        batch_size = batch["image"].shape[0]
        for name, value in terms.items():
            self.log(f"train/loss/{name}", value.detach(), batch_size=batch_size, prog_bar=name == "total")
        return terms["total"]

    # ------------------------------------------------------------- validation
    def _heavy_now(self) -> bool:
        every = self.hparams.heavy_every_n_epochs
        if self.trainer.testing:
            return bool(self.hparams.heavy_metrics)
        return bool(self.hparams.heavy_metrics) and every > 0 and (self.current_epoch + 1) % every == 0

    def _eval_step(self, batch: Mapping[str, Any], dataloader_idx: int) -> TestTimeOutput:
        split = self._split_names[dataloader_idx]
        output = infer_alpha(
            self.net, batch["image"], self.hparams.val_strategy, self.hparams.val_resize_mode
        )
        pred = output.alpha[None]
        target = batch["alpha"][0]  # float64, as the official evaluation
        trimap = batch["trimap"][0] if "trimap" in batch else None
        collections = [self.val_metrics[split]]
        if self._heavy_now() and split in self.heavy_val_metrics:
            collections.append(self.heavy_val_metrics[split])
        for collection in collections:
            collection.update(pred, target, trimap)
            self.log_dict(collection, batch_size=1, add_dataloader_idx=False)
        if "facemask" in batch and split in self.privacy_val_metrics:
            privacy = self.privacy_val_metrics[split]
            privacy.update(pred, target, batch["facemask"][0])
            self.log_dict(privacy, batch_size=1, add_dataloader_idx=False)
        return output

    def validation_step(
        self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> TestTimeOutput:
        """Predict one full-resolution image with the validation strategy and update its split's metrics."""
        return self._eval_step(batch, dataloader_idx)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> TestTimeOutput:
        """As validation, with the heavy metrics always on."""
        return self._eval_step(batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        """Log the privacy gap (NP minus P) of every metric both splits computed."""
        self._log_np_minus_p()

    def on_test_epoch_end(self) -> None:
        """As validation."""
        self._log_np_minus_p()

    def _log_np_minus_p(self) -> None:
        """``<parent>/np_minus_p/<metric>``: how much worse the model does on visible faces than on blurred.

        The split metrics are computed (and synced across DDP ranks) here, the same values Lightning
        logs for them; every rank runs this hook, so the collective calls line up.
        """
        prefixes = self._split_prefixes()
        blurred = next((s for s, p in prefixes.items() if p.rsplit("/", 1)[-1] == "p"), None)
        visible = next((s for s, p in prefixes.items() if p.rsplit("/", 1)[-1] == "np"), None)
        if blurred is None or visible is None:
            return
        parent = prefixes[blurred].rsplit("/", 1)[0]
        groups = [self.val_metrics]
        if self._heavy_now():
            groups.append(self.heavy_val_metrics)
        for group in groups:
            if blurred not in group or visible not in group:
                continue
            for name in group[blurred].keys(keep_base=True):
                if name not in group[visible].keys(keep_base=True):
                    continue
                p_metric, np_metric = group[blurred][name], group[visible][name]
                if not (p_metric.update_called and np_metric.update_called):
                    continue
                gap = np_metric.compute() - p_metric.compute()
                # identical on every rank already; sync_dist only tells Lightning so (a mean of equal values)
                self.log(f"{parent}/np_minus_p/{name}", gap, batch_size=1, sync_dist=True)

    def _split_prefixes(self) -> dict[str, str]:
        splits = getattr(self.trainer.datamodule, "eval_splits", None) or []
        return {split.name: split.prefix for split in splits if split.name in self._split_names}

    # -------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> dict[str, Any]:
        """Finish the partially applied optimizer (and scheduler) from the config."""
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
