"""The LightningModule that trains and validates P3M-Net."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from lightning.fabric.utilities.data import AttributeDict
from torch import Tensor, nn

from p3m.models.checkpoints import load_checkpoint_state, require_backbone
from p3m.models.components.p3mnet import P3MNet
from p3m.models.evaluation import EvaluationModule
from p3m.models.performance import compile_in_place, enable_activation_checkpointing, to_channels_last
from p3m.models.test_time import TestTimeOutput, infer_alpha

log = logging.getLogger(__name__)

SCHEDULER_INTERVALS = ("epoch", "step")  # Lightning's lr_scheduler "interval" values


class P3MLitModule(EvaluationModule):
    """Trains P3M-Net with the paper's losses; validates and tests it per split (:class:`EvaluationModule`).

    Args:
        net: The network (``P3MNet``); its forward returns the official 6-tuple as a named tuple.
        loss: ``P3MLoss``: returns a dict of named weighted terms and ``total``.
        optimizer: A partially applied optimizer; parameters are passed here.
        scheduler: A partially applied LR scheduler or None (the paper: constant LR).
        scheduler_interval: When the scheduler steps: ``epoch`` (after every training epoch) or
            ``step`` (after every optimizer step: warm-up and one-cycle schedules of short runs).
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
        privacy: The privacy mode (conf/privacy, :mod:`p3m.privacy.modes`): its ``training_forward``
            runs the network in training (P3M-FCP pastes features inside it); None: a plain forward.
    """

    hparams: AttributeDict  # what save_hyperparameters() stores

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
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
        super().__init__(
            # sad_privacy on the splits with face masks, e.g. val/p/sad_privacy
            metrics=[*val_metrics, *(["sad_privacy"] if "sad_privacy" not in val_metrics else [])],
            heavy_metrics=heavy_metrics,
            heavy_every_n_epochs=heavy_every_n_epochs,
        )
        # Objects stay out of the checkpoint so it loads with torch.load(weights_only=True); the privacy
        # mode is recorded as plain values.
        self.save_hyperparameters(logger=False, ignore=["net", "loss", "optimizer", "scheduler", "privacy"])
        self.hparams["privacy"] = privacy.describe() if privacy is not None else None
        self.privacy = privacy
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        if scheduler_interval not in SCHEDULER_INTERVALS:
            raise ValueError(
                f"model.scheduler_interval={scheduler_interval!r}: expected one of {SCHEDULER_INTERVALS}"
            )
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
    def predict_matte(self, batch: Mapping[str, Any]) -> TestTimeOutput:
        """The batch's one full-resolution image through the validation strategy (matte, trimap, local)."""
        return infer_alpha(self.net, batch["image"], self.hparams.val_strategy, self.hparams.val_resize_mode)

    # -------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> dict[str, Any]:  # type: ignore[override]  # a Lightning config dict
        """Finish the partially applied optimizer (and scheduler) from the config."""
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler_factory(optimizer=optimizer)
        interval = self.hparams.scheduler_interval
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
