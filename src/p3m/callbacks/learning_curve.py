"""``learning_curve.png``: training loss and validation SAD against optimizer steps.

The picture that tells at a glance whether a run learns (``make demo`` writes one beside its
metrics). The callback keeps every step's training loss and each validation's metrics, stores them in
the checkpoint (a resumed run draws the whole curve) and draws the figure when training ends, on
rank 0. matplotlib is imported only then, so runs without the callback never load it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch import Tensor

from p3m.utils.files import write_figure

log = logging.getLogger(__name__)

Points = list[tuple[int, float]]  # (optimizer step, value)


class LearningCurve(Callback):
    """Collect the training loss and validation metrics, and draw them against steps when training ends.

    Args:
        dirpath: Folder of the picture; None: the trainer's ``default_root_dir`` (the run directory).
        filename: Name of the PNG.
        loss_key: What the curve calls the training loss (the ``loss`` the training step returns).
        metric_keys: Validation metrics drawn on the right axis (``trainer.callback_metrics`` keys).
        title: Title of the figure.
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,
        filename: str = "learning_curve.png",
        loss_key: str = "train/loss/total",
        metric_keys: Sequence[str] = ("val/p/sad", "val/np/sad"),
        title: str = "P3M-Net training",
    ) -> None:
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.filename = filename
        self.loss_key = loss_key
        self.metric_keys = tuple(metric_keys)
        self.title = title
        # detached tensors, turned into floats when drawn or saved: no device sync at every step
        self._losses: list[tuple[int, Tensor | float]] = []
        self.metrics: dict[str, Points] = {key: [] for key in self.metric_keys}

    @property
    def losses(self) -> Points:
        """(step, training loss) of every training batch so far."""
        return [(step, float(value)) for step, value in self._losses]

    @property
    def path(self) -> Path | None:
        """Where the picture goes (known once the trainer is set up when ``dirpath`` is None)."""
        return self.dirpath / self.filename if self.dirpath is not None else None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Resolve the folder: the run directory unless one was given."""
        if self.dirpath is None:
            self.dirpath = Path(trainer.default_root_dir)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Keep the batch's loss at the step count after its optimizer step."""
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, Tensor):
            self._losses.append((trainer.global_step, loss.detach()))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Keep this validation's metrics (not the sanity check's)."""
        if trainer.sanity_checking:
            return
        for key in self.metric_keys:
            value = trainer.callback_metrics.get(key)
            if value is not None:
                self.metrics[key].append((trainer.global_step, float(value)))

    @rank_zero_only
    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Draw the picture."""
        if self.path is None or not self._losses:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_figure(self.path, draw_learning_curve(self.losses, self.metrics, self.loss_key, self.title))
        log.info("learning curve: %s", self.path)

    def state_dict(self) -> dict[str, Any]:
        """The points so far, in plain types (checkpoints load with ``weights_only=True``)."""
        return {"losses": self.losses, "metrics": {k: list(v) for k, v in self.metrics.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the curve of the run a checkpoint was saved from."""
        self._losses = [(int(s), float(v)) for s, v in state_dict.get("losses", [])]
        for key, points in state_dict.get("metrics", {}).items():
            self.metrics[key] = [(int(s), float(v)) for s, v in points]


def smoothed(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Exponential moving average with bias correction (as TensorBoard smooths): a noisy loss's trend."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


def draw_learning_curve(losses: Points, metrics: Mapping[str, Points], loss_key: str, title: str) -> Any:
    """A matplotlib figure: training loss (log scale, left) and validation metrics (right) against steps."""
    from matplotlib.figure import Figure  # only when drawing: imports in about a second
    from matplotlib.ticker import FuncFormatter

    figure = Figure(figsize=(8, 4.5), dpi=120, layout="constrained")
    loss_axis = figure.add_subplot()
    steps = [s for s, _ in losses]
    values = [v for _, v in losses]
    loss_axis.plot(steps, values, color="tab:blue", alpha=0.25, linewidth=0.8)
    loss_axis.plot(steps, smoothed(values), color="tab:blue", label=f"{loss_key} (smoothed)")
    loss_axis.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 2, 3, 4 rather than 2x10^0
    loss_axis.yaxis.set_major_formatter(plain)
    loss_axis.yaxis.set_minor_formatter(plain)
    loss_axis.set_xlabel("optimizer step")
    loss_axis.set_ylabel("training loss", color="tab:blue")
    loss_axis.set_title(title)
    loss_axis.grid(alpha=0.3)
    metric_axis = loss_axis.twinx()
    colours = ("tab:red", "tab:orange", "tab:green", "tab:purple")
    for (key, points), colour in zip(metrics.items(), colours, strict=False):
        if points:
            metric_axis.plot([s for s, _ in points], [v for _, v in points], "o-", color=colour, label=key)
    metric_axis.set_ylabel("validation SAD (per image, in thousands)")
    metric_axis.set_ylim(bottom=0)
    handles = [h for axis in (loss_axis, metric_axis) for h in axis.get_legend_handles_labels()[0]]
    metric_axis.legend(handles=handles, loc="upper right")
    return figure
