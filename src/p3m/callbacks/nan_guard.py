"""Stop (or skip the step) when the loss or the gradients stop being finite, instead of training on NaNs.

A NaN or Inf loss makes every weight NaN after one optimizer step; the run then goes on for days,
logging NaN. Before each optimizer step the guard checks the step's losses and the gradients (already
averaged over the DDP ranks) with one host sync, and then:

- ``action: raise`` (default): stops the run with ``FloatingPointError`` naming the epoch, step and
  what to try;
- ``action: skip``: drops the gradients, so the optimizer leaves the weights (and its moments) as
  they were, logs ``train/skipped_steps``, and still stops after ``max_consecutive_skips`` bad steps
  in a row.

The decision is reduced over all ranks (one tiny all-reduce per step), so every rank skips or stops
together. Under 16-bit mixed precision non-finite gradients are the GradScaler's business (it skips
those steps and lowers the scale), so only the loss is checked there.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from lightning import Callback, LightningModule, Trainer
from torch import Tensor
from torch.nn.utils import get_total_norm
from torch.optim import Optimizer

log = logging.getLogger(__name__)

Action = Literal["raise", "skip"]


class NonFiniteGuard(Callback):
    """Detect NaN/Inf losses and gradients; raise or skip the step.

    Args:
        action: ``raise`` or ``skip``.
        check_grads: Also check the gradients before the optimizer step (one pass over them).
        max_consecutive_skips: With ``skip``, raise after this many bad steps in a row.
    """

    def __init__(
        self, action: Action = "raise", check_grads: bool = True, max_consecutive_skips: int = 10
    ) -> None:
        if action not in ("raise", "skip"):
            raise ValueError(f"callbacks.nan_guard.action must be 'raise' or 'skip', got {action!r}")
        self.action = action
        self.check_grads = check_grads
        self.max_consecutive_skips = max(1, int(max_consecutive_skips))
        self.skipped_steps = 0
        self._consecutive = 0
        self._losses: list[Tensor] = []  # this step's (micro-batch) losses, checked at the optimizer step

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        """Keep the loss; it is checked with the gradients, in one host sync, before the optimizer step."""
        self._losses.append(loss.detach())

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer
    ) -> None:
        """Raise or drop the gradients when any rank saw a non-finite loss or gradient."""
        losses, self._losses = self._losses, []
        checks = [torch.isfinite(loss).all() for loss in losses]
        if self.check_grads and not _mixed_16(trainer):
            checks.append(_grads_finite(optimizer))
        finite = bool(torch.stack([c.to(checks[0].device) for c in checks]).all()) if checks else True
        bad = trainer.strategy.reduce_boolean_decision(not finite, all=False)
        if not bad:
            self._consecutive = 0
            return
        bad_losses = [float(loss.float().sum()) for loss in losses if not torch.isfinite(loss).all()]
        what = f"loss {bad_losses[0]}" if bad_losses else "non-finite gradients or a NaN on another rank"
        where = f"epoch {trainer.current_epoch}, global step {trainer.global_step}"
        if self.action == "raise" or self._consecutive + 1 >= self.max_consecutive_skips:
            reason = (
                f"{self._consecutive + 1} non-finite steps in a row"
                if self.action == "skip"
                else "a non-finite training step"
            )
            raise FloatingPointError(
                f"stopping: {reason} ({what}) at {where}; the weights before this step are intact. "
                "Try a lower model.optimizer.lr, trainer.gradient_clip_val=1.0, trainer.precision=32-true, "
                "or check the batch's images and alphas (train/loss/* shows which term diverged); "
                "callbacks.nan_guard.action=skip skips such steps instead"
            )
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.grad = None  # torch optimizers skip parameters without a gradient
        self.skipped_steps += 1
        self._consecutive += 1
        log.warning("nan_guard: skipped the optimizer step at %s (%s)", where, what)
        pl_module.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False)


def _mixed_16(trainer: Trainer) -> bool:
    return str(trainer.precision).startswith("16")


def _grads_finite(optimizer: Optimizer) -> Tensor:
    """A boolean tensor on the gradients' device (no host sync here)."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return torch.tensor(True)
    return torch.isfinite(get_total_norm(grads, norm_type=float("inf")))
