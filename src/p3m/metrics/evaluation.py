"""One evaluator for validation, ``trainer.test`` and ``src/eval.py``: split means, gaps, per-image values.

Names, everywhere (logs, metrics.json, W&B):

- a split's means: ``<stage>/<prefix>/<metric>`` (``val/p/sad`` in validation, ``test/np/sad`` in test);
- a gap: ``<stage>/<prefix>_minus_<base>/<metric>`` for each split that declares a base
  (``gap_to``): ``test/np_minus_p/sad`` is P3M-500-NP minus P3M-500-P, the paper's privacy gap.

Means are per-image averages, reduced across processes by the metrics' ``sum`` states, so a DDP run
gives the single-process numbers; the per-image values are gathered from every rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.distributed as dist
from torch import Tensor, nn

from p3m.metrics.collection import METRIC_NAMES, MattingMetricCollection, matting_metrics
from p3m.metrics.matting import METRIC_CLASSES
from p3m.metrics.privacy import SADPrivacy, sad_privacy

PRIVACY_METRIC = "sad_privacy"


@dataclass(frozen=True)
class SplitSpec:
    """What the evaluator needs to know of one evaluation split.

    Attributes:
        name: Split name, e.g. ``P3M-500-P`` (the key of metrics.json).
        prefix: Short name in metric keys, e.g. ``p``: logged as ``<stage>/p/<metric>``.
        has_trimap: Its samples carry trimaps (else the trimap metrics are skipped).
        has_facemask: Its samples may carry face masks (``sad_privacy``).
        gap_to: Prefix of the split this one is compared with (``np`` -> ``p``: ``np_minus_p``), or None.
    """

    name: str
    prefix: str
    has_trimap: bool = True
    has_facemask: bool = False
    gap_to: str | None = None


@dataclass
class SplitResult:
    """Metrics of one evaluation split: the per-image means and every image's values."""

    name: str
    prefix: str = ""
    mean: dict[str, float] = field(default_factory=dict)
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)


def _needs_trimap(name: str) -> bool:
    """Whether a registered metric (ours or a plug-in's) needs a trimap; unknown names fail later, named."""
    metric = METRIC_CLASSES.get(name)
    return bool(metric is not None and metric.needs_trimap)


class SplitEvaluator(nn.Module):
    """The metrics of one split: cheap and heavy collections, ``sad_privacy``, and per-image records.

    Args:
        spec: The split.
        metrics: Metrics computed at every update (``sad_privacy`` among them: on face masks).
        heavy_metrics: Metrics computed only on updates with ``heavy=True`` (Grad, Conn in training).
    """

    def __init__(self, spec: SplitSpec, metrics: Sequence[str], heavy_metrics: Sequence[str] = ()) -> None:
        super().__init__()
        self.spec = spec
        temporal = [n for n in (*metrics, *heavy_metrics) if getattr(METRIC_CLASSES.get(n), "temporal", 0)]
        if temporal:
            raise ValueError(
                f"{', '.join(temporal)}: video metric(s), scored on clips; the image splits take image "
                "metrics only (video clips: p3m eval mode=video, see docs/video.md)"
            )

        def usable(names: Sequence[str]) -> list[str]:
            return [n for n in names if n != PRIVACY_METRIC and (spec.has_trimap or not _needs_trimap(n))]

        cheap, heavy = usable(metrics), usable([n for n in heavy_metrics if n not in metrics])
        self.cheap: MattingMetricCollection | None = matting_metrics(cheap) if cheap else None
        self.heavy: MattingMetricCollection | None = matting_metrics(heavy) if heavy else None
        wants_privacy = PRIVACY_METRIC in metrics or PRIVACY_METRIC in heavy_metrics
        self.privacy: SADPrivacy | None = SADPrivacy() if wants_privacy and spec.has_facemask else None
        self.records: dict[str, dict[str, float]] = {}
        # the order of the values: as configured (MetricCollection sorts its keys)
        self.order = [*cheap, *heavy, PRIVACY_METRIC]

    def _ordered(self, values: Mapping[str, float]) -> dict[str, float]:
        return {name: values[name] for name in self.order if name in values}

    def update(
        self,
        stem: str,
        pred: Tensor,
        target: Tensor,
        trimap: Tensor | None = None,
        facemask: Tensor | None = None,
        heavy: bool = False,
    ) -> dict[str, float]:
        """Score one image (``pred`` shaped as ``target``), add it to the means and record its values."""
        values: dict[str, float] = {}
        trimap = trimap if self.spec.has_trimap else None
        for collection in (self.cheap, self.heavy if heavy else None):
            if collection is not None:
                values |= {k: float(v) for k, v in collection(pred, target, trimap).items()}
        if self.privacy is not None and facemask is not None:
            self.privacy.update(pred, target, facemask)
            score = float(sad_privacy(pred, target, facemask).reshape(-1)[0])
            if score == score:  # NaN: no face in this image
                values[PRIVACY_METRIC] = score
        self.records[stem] = values = self._ordered(values)
        return values

    def compute(self, heavy: bool = False) -> dict[str, float]:
        """Per-image means, synced across processes (every rank must call this)."""
        means: dict[str, float] = {}
        for collection in (self.cheap, self.heavy if heavy else None):
            if collection is not None and all(m.update_called for m in collection.values()):
                means |= {k: float(v) for k, v in collection.compute().items()}
        if self.privacy is not None and self.privacy.update_called:
            value = float(self.privacy.compute())
            if value == value:  # no face on any rank: no sad_privacy
                means[PRIVACY_METRIC] = value
        return self._ordered(means)

    def reset(self) -> None:
        """Forget every update (the next validation starts afresh)."""
        for metric in (self.cheap, self.heavy, self.privacy):
            if metric is not None:
                metric.reset()
        self.records = {}


class Evaluator(nn.Module):
    """Per-split evaluators of the evaluation splits, in order (the dataloader index is the split index).

    Args:
        splits: The evaluation splits.
        metrics: Metrics of every update (``sad_privacy``: on splits with face masks).
        heavy_metrics: Metrics of updates with ``heavy=True`` only.
    """

    def __init__(
        self,
        splits: Sequence[SplitSpec],
        metrics: Sequence[str] = METRIC_NAMES,
        heavy_metrics: Sequence[str] = (),
    ) -> None:
        super().__init__()
        prefixes = [s.prefix for s in splits]
        for spec in splits:
            if "/" in spec.prefix:
                raise ValueError(
                    f"evaluation split {spec.name}: prefix {spec.prefix!r} holds a '/'; the prefix is the "
                    "split's short name (p, np) and the stage is prepended (val/p/sad, test/p/sad)"
                )
            if spec.gap_to is not None and spec.gap_to not in prefixes:
                raise ValueError(
                    f"evaluation split {spec.name}: gap_to={spec.gap_to!r} names no split's prefix; "
                    f"prefixes: {prefixes}"
                )
        self.specs = list(splits)
        self.splits = nn.ModuleList(SplitEvaluator(s, metrics, heavy_metrics) for s in splits)

    def update(
        self, index: int, stem: str, pred: Tensor, target: Tensor, **kwargs: Tensor | bool | None
    ) -> dict[str, float]:
        """Score one image of split ``index``; keyword arguments as :meth:`SplitEvaluator.update`."""
        split = cast(SplitEvaluator, self.splits[index])
        return split.update(stem, pred, target, **kwargs)  # type: ignore[arg-type]  # checked by its signature

    def results(self, heavy: bool = False) -> list[SplitResult]:
        """Every split's means (synced) and per-image values (gathered from every rank, sorted by stem).

        A collective call under DDP: every rank must make it.
        """
        results = []
        for split in cast(Sequence[SplitEvaluator], self.splits):
            records = gather_records(split.records)
            results.append(
                SplitResult(
                    split.spec.name,
                    split.spec.prefix,
                    split.compute(heavy),
                    {stem: records[stem] for stem in sorted(records)},
                )
            )
        return results

    def reset(self) -> None:
        """Reset every split."""
        for split in cast(Sequence[SplitEvaluator], self.splits):
            split.reset()

    def gaps(self, results: Sequence[SplitResult], stage: str) -> dict[str, dict[str, float]]:
        """``{"<stage>/<prefix>_minus_<base>": {metric: split - base}}`` for splits that declare a base."""
        by_prefix = {r.prefix: r for r in results}
        gaps: dict[str, dict[str, float]] = {}
        for spec, result in zip(self.specs, results, strict=True):
            base = by_prefix.get(spec.gap_to) if spec.gap_to else None
            if base is not None:
                key = f"{stage}/{spec.prefix}_minus_{spec.gap_to}"
                gaps[key] = {k: result.mean[k] - base.mean[k] for k in result.mean if k in base.mean}
        return gaps

    def log_values(self, results: Sequence[SplitResult], stage: str) -> dict[str, float]:
        """Flat metric keys of the loggers: ``<stage>/<prefix>/<metric>`` and the gaps."""
        values = {f"{stage}/{r.prefix}/{k}": v for r in results for k, v in r.mean.items()}
        for key, gap in self.gaps(results, stage).items():
            values |= {f"{key}/{k}": v for k, v in gap.items()}
        return values


def gather_records(records: Mapping[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The per-image records of every rank merged (this rank's alone outside DDP); a collective call."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return dict(records)
    gathered: list[dict[str, dict[str, float]] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, dict(records))
    merged: dict[str, dict[str, float]] = {}
    for part in gathered:
        merged |= part or {}
    return merged


def metric_order(results: Sequence[SplitResult]) -> list[str]:
    """Every metric name that occurs in ``results``, in the papers' order."""
    present = {k for r in results for values in (r.mean, *r.per_image.values()) for k in values}
    return [n for n in METRIC_NAMES if n in present] + sorted(present - set(METRIC_NAMES))


def to_uint8(matte: Tensor) -> Tensor:
    """A float matte in [0, 1] as 8 bits (rounded, as the official ``* 255``); uint8 passes through."""
    if matte.dtype == torch.uint8:
        return matte
    return (matte.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
