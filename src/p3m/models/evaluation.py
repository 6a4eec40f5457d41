"""The evaluation half of a LightningModule: validation and test on every evaluation split.

:class:`EvaluationModule` runs :class:`~p3m.metrics.evaluation.Evaluator` on the datamodule's
``eval_splits``; subclasses say how a batch becomes a matte (:meth:`EvaluationModule.predict_matte`).
``P3MLitModule`` (training) and ``src/eval.py`` (:class:`MatteEvaluationModule`) both evaluate
through it, so both log ``val/<prefix>/<metric>`` / ``test/<prefix>/<metric>`` and the gaps
``<stage>/np_minus_p/<metric>`` with the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning import LightningModule
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor, nn

from p3m.data.eval_splits import EvalSplit
from p3m.metrics.evaluation import Evaluator, SplitResult, SplitSpec, to_uint8
from p3m.models.test_time import TestTimeOutput
from p3m.utils.files import write_image

# Under DDP Lightning advises ``sync_dist=True`` for every value logged per epoch, when it reads them at
# the epoch's end (after ``self.log``, so a filter around the call misses it). The evaluator's values
# are reduced over the ranks already: another reduction would only cost time. Other keys keep the advice.
warnings.filterwarnings(
    "ignore", message=r"It is recommended to use `self.log\('(val|test)/", category=PossibleUserWarning
)


def split_spec(split: EvalSplit) -> SplitSpec:
    """The evaluator's view of a data config split."""
    return SplitSpec(
        name=split.name,
        prefix=split.prefix,
        has_trimap=bool(split.trimap_dir),
        has_facemask=bool(split.facemask_dir),
        gap_to=split.gap_to,
    )


class EvaluationModule(LightningModule):
    """Validation and test through one :class:`Evaluator`; subclasses implement ``predict_matte``.

    After ``trainer.test``, ``test_results`` holds every split's means and the per-image values
    gathered from every rank (on every rank), ``test_gaps`` the gaps.

    Args:
        metrics: Metrics of every validation and test image (``sad_privacy`` on splits with face masks).
        heavy_metrics: Metrics computed every ``heavy_every_n_epochs`` validations and always at test.
        heavy_every_n_epochs: Period of the heavy metrics in validation; 0: only at test.
        save_dir: Write each test matte to ``<save_dir>/<split>/<stem>.png`` (8-bit), or None.
    """

    def __init__(
        self,
        metrics: Sequence[str],
        heavy_metrics: Sequence[str] = (),
        heavy_every_n_epochs: int = 0,
        save_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.eval_metrics = list(metrics)
        self.eval_heavy_metrics = list(heavy_metrics)
        self.heavy_every_n_epochs = heavy_every_n_epochs
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.evaluator: Evaluator | None = None
        self.test_results: list[SplitResult] = []
        self.test_gaps: dict[str, dict[str, float]] = {}

    def predict_matte(self, batch: Mapping[str, Any]) -> Tensor | TestTimeOutput:
        """The matte of the batch's one image: (H, W) float in [0, 1] or uint8, or a
        :class:`TestTimeOutput` (its ``alpha``; callbacks such as the W&B panels read the rest)."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict_matte")

    def setup(self, stage: str) -> None:
        """Build the evaluator from the datamodule's ``eval_splits`` (once)."""
        datamodule = self.trainer.datamodule if self._trainer else None  # type: ignore[attr-defined]  # Lightning's
        splits = getattr(datamodule, "eval_splits", None)
        if splits and self.evaluator is None:
            self.evaluator = Evaluator(
                [split_spec(s) for s in splits], self.eval_metrics, self.eval_heavy_metrics
            ).to(self.device)

    def _heavy_now(self) -> bool:
        if self.trainer.testing:
            return True
        every = self.heavy_every_n_epochs
        return every > 0 and (self.current_epoch + 1) % every == 0

    def _evaluate_batch(self, batch: Mapping[str, Any], dataloader_idx: int) -> Tensor | TestTimeOutput:
        if self.evaluator is None:
            raise RuntimeError("evaluation needs a datamodule with eval_splits (P3M10kDataModule)")
        output = self.predict_matte(batch)
        pred = output.alpha if isinstance(output, TestTimeOutput) else output
        target = batch["alpha"][0]  # float64, as the official evaluation
        pred = pred.to(target.device).reshape(target.shape)
        stem = str(batch["stem"][0])
        self.evaluator.update(
            dataloader_idx,
            stem,
            pred,
            target,
            trimap=batch["trimap"][0] if "trimap" in batch else None,
            facemask=batch["facemask"][0] if "facemask" in batch else None,
            heavy=self._heavy_now(),
        )
        if self.save_dir is not None and self.trainer.testing:
            split = self.evaluator.specs[dataloader_idx].name
            (self.save_dir / split).mkdir(parents=True, exist_ok=True)
            matte = to_uint8(pred).reshape(pred.shape[-2:]).cpu().numpy()
            write_image(self.save_dir / split / f"{stem}.png", matte)
        return output

    def validation_step(  # type: ignore[override]  # returns the matte for callbacks, not a loss
        self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor | TestTimeOutput:
        """Predict one full-resolution image and score it in its split."""
        return self._evaluate_batch(batch, dataloader_idx)

    def test_step(  # type: ignore[override]  # returns the matte for callbacks, not a loss
        self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor | TestTimeOutput:
        """As validation, with the heavy metrics always on (and the mattes saved with ``save_dir``)."""
        return self._evaluate_batch(batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/<prefix>/<metric>`` and the gaps; reset for the next validation."""
        self._log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        """Log ``test/<prefix>/<metric>`` and the gaps; keep them in ``test_results``."""
        self.test_results, self.test_gaps = self._log_evaluation("test")

    def _log_evaluation(self, stage: str) -> tuple[list[SplitResult], dict[str, dict[str, float]]]:
        if self.evaluator is None:
            return [], {}
        # every rank runs this hook: the metrics' syncs and the records' gather line up; the values are
        # then equal on every rank, so they are logged without another reduction
        results = self.evaluator.results(heavy=self._heavy_now())
        values = self.evaluator.log_values(results, stage)
        if values:
            self.log_dict(values, batch_size=1, sync_dist=False, add_dataloader_idx=False)
        gaps = self.evaluator.gaps(results, stage)
        self.evaluator.reset()
        return results, gaps


class MatteEvaluationModule(EvaluationModule):
    """``src/eval.py``'s module: mattes from a predictor (a network and a test-time strategy, an ONNX
    session, or a folder of existing mattes).

    Args:
        predictor: Maps a batch of one image to its (H, W) matte.
        net: The network the predictor runs, registered here so Lightning moves it to the device;
            None for predictors without torch weights.
        **kwargs: As :class:`EvaluationModule`.
    """

    def __init__(
        self, predictor: Callable[[Mapping[str, Any]], Tensor], net: nn.Module | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.predictor = predictor
        self.net = net

    def predict_matte(self, batch: Mapping[str, Any]) -> Tensor:
        """The predictor's matte."""
        return self.predictor(batch)
