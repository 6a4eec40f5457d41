"""P3M-Net training losses with every weight explicit.

The official ``train.py`` writes the total as::

    seg/6 + 2*(alpha_unknown + laplacian_unknown) + 2*fusion + fusion + composition
    seg    = ce_side2 + ce_side1 + ce_side0 + 3*ce_global
    fusion = alpha_whole + laplacian_whole

so the whole-image alpha and Laplacian terms carry an implicit weight of 3. :class:`P3MLoss` has one
constructor argument per weight, defaulting to those paper values, and returns named weighted terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from p3m.utils.conventions import TRIMAP_FOREGROUND, TRIMAP_UNKNOWN

#: Loss term names, in the order of the official code. They are the keys of the returned dicts.
TERM_NAMES: tuple[str, ...] = (
    "ce_global",
    "ce_side2",
    "ce_side1",
    "ce_side0",
    "alpha_unknown",
    "laplacian_unknown",
    "alpha_whole",
    "laplacian_whole",
    "composition",
)

# Model output fields each term reads (official 6-tuple order: global, local, fusion, side2/1/0).
_OUTPUT_FIELDS: tuple[str, ...] = ("global_logits", "local_alpha", "fusion_alpha", "side2", "side1", "side0")
_TERM_INPUT: dict[str, str] = {
    "ce_global": "global_logits",
    "ce_side2": "side2",
    "ce_side1": "side1",
    "ce_side0": "side0",
    "alpha_unknown": "local_alpha",
    "laplacian_unknown": "local_alpha",
    "alpha_whole": "fusion_alpha",
    "laplacian_whole": "fusion_alpha",
    "composition": "fusion_alpha",
}

# Batch keys each term reads.
_TERM_KEYS: dict[str, tuple[str, ...]] = {
    **{n: ("trimap",) for n in ("ce_global", "ce_side2", "ce_side1", "ce_side0")},
    "alpha_unknown": ("alpha", "trimap"),
    "laplacian_unknown": ("alpha", "trimap"),
    "alpha_whole": ("alpha",),
    "laplacian_whole": ("alpha",),
    "composition": ("image", "fg", "bg"),
}

BACKGROUND_VALUE = 0.0
#: Optional batch key: 0 where the label says nothing about alpha (the band of a binary mask).
KNOWN_KEY = "alpha_known"
# The terms that leave out the pixels whose alpha is not known (the cross-entropies keep them).
_MASKED_BY_KNOWN = frozenset(TERM_NAMES) - {"ce_global", "ce_side2", "ce_side1", "ce_side0"}


def official_gauss_kernel(size: int = 5, sigma: float = 1.0) -> Tensor:
    """The 2-D smoothing kernel of the official Laplacian loss, as a (1, 1, size, size) float32 tensor.

    The official code builds it from a coordinate grid with ``exp(-(x - c)**2 / (2 sigma**2)) ** 2``
    (the square makes each 1-D factor a Gaussian of variance sigma**2 / 2) and then *sums* the row and
    column terms instead of multiplying them: ``k[i, j] ∝ g(i) + g(j)``. We reproduce that kernel
    exactly; it is not a separable Gaussian.

    Args:
        size: Odd kernel width.
        sigma: Width parameter of the 1-D terms before squaring.

    Returns:
        The normalised kernel (sums to 1).
    """
    if size % 2 != 1:
        raise ValueError(f"official_gauss_kernel: size must be odd, got {size}")
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(x**2 / (-2.0 * sigma**2)) ** 2
    kernel = g[:, None] + g[None, :]
    kernel = kernel / kernel.sum()
    return kernel.to(torch.float32)[None, None]


def laplacian_pyramid(image: Tensor, kernel: Tensor, levels: int = 5) -> list[Tensor]:
    """Laplacian pyramid of ``image`` (N, 1, H, W): ``levels`` band-pass images and the low-pass residual.

    Each level is ``current - blur(current)`` with replicate padding; the next level is the blurred
    image average-pooled by 2 (as the official loss; odd sizes are floored by the pooling).
    """
    pad = kernel.shape[-1] // 2
    current = image
    pyramid = []
    for _ in range(levels):
        blurred = F.conv2d(F.pad(current, (pad, pad, pad, pad), mode="replicate"), kernel)
        pyramid.append(current - blurred)
        current = F.avg_pool2d(blurred, 2)
    pyramid.append(current)
    return pyramid


def segmentation_target(trimap: Tensor) -> Tensor:
    """3-class target (N, H, W) long from a trimap (N, 1, H, W): 0 -> 0 (bg), 255 -> 2 (fg), else 1.

    Any value other than exactly 0 or 255 (128, or the intermediate values of a bilinearly resized
    trimap) is the transition class, as the shared batch contract says. The official code casts
    values in (0, 2] with ``long()`` instead, which only differs for values below 1 or equal to 2;
    an 8-bit trimap resized bilinearly rarely produces them.
    """
    target = torch.ones_like(trimap[:, 0], dtype=torch.long)
    target = torch.where(trimap[:, 0] == BACKGROUND_VALUE, 0, target)
    return torch.where(trimap[:, 0] == TRIMAP_FOREGROUND, 2, target)


def charbonnier_sum(diff: Tensor, eps: float) -> Tensor:
    """``sum(sqrt(diff**2 + eps))`` over every element (the official 'alpha' and composition losses)."""
    return torch.sqrt(diff**2 + eps).sum()


class P3MLoss(nn.Module):
    """The P3M-Net training objective as a dict of named, weighted terms.

    Effective weights of the official ``train.py`` (the defaults)::

        ce_global          seg_global * seg_scale = 3 / 6    global decoder cross-entropy
        ce_side2/1/0       seg_side   * seg_scale = 1 / 6    side outputs (each)
        alpha_unknown      local_alpha            = 2        local alpha, unknown region
        laplacian_unknown  local_laplacian        = 2        local Laplacian, unknown region
        alpha_whole        fusion_alpha           = 3        fused alpha, whole image
        laplacian_whole    fusion_laplacian       = 3        fused Laplacian, whole image
        composition        composition            = 1        fused-alpha composition, whole image

    Conventions (identical to the official code):

    * cross-entropy: mean over pixels; target from the trimap, see :func:`segmentation_target`;
    * alpha terms: ``sqrt(d**2 + eps)`` with ``eps = 1e-12``; the unknown-region term multiplies ``d``
      by the mask ``trimap == 128`` and divides the sum over *all* pixels by ``mask.sum() + 1`` (so
      masked pixels still add ``sqrt(eps)``); the whole-image term divides by the number of pixels;
    * Laplacian terms: pyramid of :func:`laplacian_pyramid` (5 levels + residual, kernel of
      :func:`official_gauss_kernel`), sum over levels of the mean absolute difference; the
      unknown-region version masks prediction and alpha before building the pyramids;
    * composition: ``alpha * fg + (1 - alpha) * bg`` against the image, all three ImageNet-normalised,
      Charbonnier sum over the 3 channels divided by the number of *alpha* pixels (N * H * W).

    All terms are computed in float32 with autocast disabled. A term whose weight is 0 is not
    computed, so ``composition=0`` needs no ``fg``/``bg`` in the batch.

    A batch may carry ``alpha_known`` (N, 1, H, W): where it is 0 the label says nothing about alpha
    (the transition band of a binary mask, :mod:`p3m.data.band_dataset`), so the alpha, Laplacian and
    composition terms leave those pixels out: their difference is masked as the unknown-region terms
    mask theirs (the divisors stay the same). Without the key, every term is the official one.

    Args:
        seg_global: Weight of the global decoder's cross-entropy inside the segmentation sum.
        seg_side: Weight of each side output's cross-entropy inside the segmentation sum.
        seg_scale: Factor applied to the whole segmentation sum.
        local_alpha: Weight of the unknown-region alpha term on the local (matting) decoder output.
        local_laplacian: Weight of the unknown-region Laplacian term on the local output.
        fusion_alpha: Weight of the whole-image alpha term on the fused alpha.
        fusion_laplacian: Weight of the whole-image Laplacian term on the fused alpha.
        composition: Weight of the composition term on the fused alpha.
        eps: Charbonnier epsilon (inside the square root).
        laplacian_levels: Band-pass levels of the Laplacian pyramid (the residual is added).
    """

    gauss_kernel: Tensor  # buffer: the official 5x5 Gaussian of the Laplacian pyramid

    def __init__(
        self,
        seg_global: float = 3.0,
        seg_side: float = 1.0,
        seg_scale: float = 1.0 / 6.0,
        local_alpha: float = 2.0,
        local_laplacian: float = 2.0,
        fusion_alpha: float = 3.0,
        fusion_laplacian: float = 3.0,
        composition: float = 1.0,
        eps: float = 1e-12,
        laplacian_levels: int = 5,
    ) -> None:
        super().__init__()
        self.weights: dict[str, float] = {
            "ce_global": float(seg_global) * float(seg_scale),
            "ce_side2": float(seg_side) * float(seg_scale),
            "ce_side1": float(seg_side) * float(seg_scale),
            "ce_side0": float(seg_side) * float(seg_scale),
            "alpha_unknown": float(local_alpha),
            "laplacian_unknown": float(local_laplacian),
            "alpha_whole": float(fusion_alpha),
            "laplacian_whole": float(fusion_laplacian),
            "composition": float(composition),
        }
        self.eps = float(eps)
        self.laplacian_levels = int(laplacian_levels)
        self.register_buffer("gauss_kernel", official_gauss_kernel(), persistent=False)

    @property
    def active_terms(self) -> tuple[str, ...]:
        """Names of the terms with a non-zero weight (the only ones computed)."""
        return tuple(name for name in TERM_NAMES if self.weights[name] != 0.0)

    def forward(self, output: Any, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Weighted terms and their sum.

        Args:
            output: The model output: a ``P3MOutput`` (or any object with its field names), a mapping
                with those keys, or the official 6-tuple (global, local, fusion, side2, side1, side0).
            batch: Training batch with ``alpha`` (N, 1, H, W) in [0, 1] and ``trimap`` (N, 1, H, W)
                0/128/255; ``image``, ``fg``, ``bg`` (N, 3, H, W) ImageNet-normalised when the
                composition weight is non-zero.

        Returns:
            ``{term: weight * raw_term}`` for every active term, plus ``"total"``.
        """
        # Checked first: computing no term raised StopIteration, which Lightning takes for the end of
        # the epoch, so a run with max_steps looped forever instead of failing.
        if not self.active_terms:
            raise ValueError("P3MLoss: every weight is 0, so there is nothing to optimise")
        raw = self.raw_terms(output, batch)
        weighted = {name: self.weights[name] * value for name, value in raw.items()}
        weighted["total"] = torch.stack(list(weighted.values())).sum()
        return weighted

    def raw_terms(
        self, output: Any, batch: Mapping[str, Tensor], names: Sequence[str] | None = None
    ) -> dict[str, Tensor]:
        """Unweighted terms (the values the official loss functions return).

        Args:
            output: See :meth:`forward`.
            batch: See :meth:`forward`.
            names: Terms to compute; defaults to :attr:`active_terms`.

        Returns:
            ``{term: value}`` (float32 scalars) in :data:`TERM_NAMES` order.
        """
        names = self.active_terms if names is None else tuple(names)
        unknown = [n for n in names if n not in TERM_NAMES]
        if unknown:
            raise ValueError(f"P3MLoss: unknown term(s) {unknown}; choose from {TERM_NAMES}")
        needed = sorted({key for n in names for key in _TERM_KEYS[n]})
        inputs = {key: _batch_tensor(batch, key, names) for key in needed}
        if KNOWN_KEY in batch and any(n in _MASKED_BY_KNOWN for n in names):
            inputs[KNOWN_KEY] = batch[KNOWN_KEY]
        preds = {field: _output_field(output, field) for field in {_TERM_INPUT[n] for n in names}}
        device_type = next(iter(preds.values())).device.type if preds else "cpu"
        terms: dict[str, Tensor] = {}
        # Losses stay in float32 under mixed precision: the 1e-12 epsilon and the pyramid sums need it.
        with torch.autocast(device_type=device_type, enabled=False):
            inputs = {key: value.float() for key, value in inputs.items()}
            preds = {field: value.float() for field, value in preds.items()}
            _check_shapes(preds, inputs)
            # None only where no requested term reads them (_TERM_KEYS)
            trimap = inputs.get("trimap")
            unknown_mask = cast(Tensor, (trimap == TRIMAP_UNKNOWN).float() if trimap is not None else None)
            seg_target = cast(Tensor, segmentation_target(trimap) if trimap is not None else None)
            alpha = cast(Tensor, inputs.get("alpha"))
            known = inputs.get(KNOWN_KEY)  # None: every pixel's label is known (the official losses)
            if known is not None and unknown_mask is not None:
                unknown_mask = unknown_mask * known
            for name in (n for n in TERM_NAMES if n in names):
                pred = preds[_TERM_INPUT[name]]
                if name.startswith("ce_"):
                    terms[name] = F.cross_entropy(pred, seg_target)
                elif name == "alpha_unknown":
                    diff = (pred - alpha) * unknown_mask
                    terms[name] = charbonnier_sum(diff, self.eps) / (unknown_mask.sum() + 1.0)
                elif name == "laplacian_unknown":
                    terms[name] = self._laplacian(pred * unknown_mask, alpha * unknown_mask)
                elif name == "alpha_whole":
                    diff = pred - alpha if known is None else (pred - alpha) * known
                    terms[name] = charbonnier_sum(diff, self.eps) / alpha.numel()
                elif name == "laplacian_whole":
                    terms[name] = (
                        self._laplacian(pred, alpha)
                        if known is None
                        else self._laplacian(pred * known, alpha * known)
                    )
                else:  # composition, in the normalised space of image/fg/bg
                    fg, bg = inputs["fg"], inputs["bg"]
                    pred3 = pred.expand(-1, fg.shape[1], -1, -1)
                    comp = pred3 * fg + (1.0 - pred3) * bg
                    diff = comp - inputs["image"] if known is None else (comp - inputs["image"]) * known
                    # The official divides by the number of alpha pixels, not by 3 * that.
                    terms[name] = charbonnier_sum(diff, self.eps) / pred.numel()
        return terms

    def _laplacian(self, pred: Tensor, alpha: Tensor) -> Tensor:
        kernel = self.gauss_kernel.to(device=pred.device, dtype=torch.float32)
        pyr_pred = laplacian_pyramid(pred, kernel, self.laplacian_levels)
        pyr_alpha = laplacian_pyramid(alpha, kernel, self.laplacian_levels)
        return torch.stack([F.l1_loss(p, a) for p, a in zip(pyr_pred, pyr_alpha, strict=True)]).sum()


def _batch_tensor(batch: Mapping[str, Tensor], key: str, names: Sequence[str]) -> Tensor:
    """``batch[key]`` with an error that says which loss term needs it and how to avoid it."""
    if key not in batch:
        needs = [n for n in names if key in _TERM_KEYS.get(n, ())] or list(names)
        raise KeyError(
            f"P3MLoss: the batch has no '{key}' (keys: {sorted(batch)}), needed by the term(s) {needs}. "
            "Provide it, or set the weight of those terms to 0 "
            "(e.g. loss=no_composition when the dataset has no fg/bg)."
        )
    return batch[key]


def _check_shapes(preds: Mapping[str, Tensor], inputs: Mapping[str, Tensor]) -> None:
    """Fail early on shapes that would silently broadcast (e.g. an alpha of (N, H, W))."""
    ref = next(iter(preds.values()))
    n, _, h, w = ref.shape if ref.ndim == 4 else (None, None, None, None)
    for source, tensors in (("model output", preds), ("batch", inputs)):
        for key, value in tensors.items():
            channels = 3 if key in ("global_logits", "side2", "side1", "side0", "image", "fg", "bg") else 1
            if value.ndim != 4 or tuple(value.shape) != (n, channels, h, w):
                raise ValueError(
                    f"P3MLoss: {source} '{key}' has shape {tuple(value.shape)}; expected "
                    f"(N, {channels}, H, W) = {(n, channels, h, w)} like the prediction "
                    f"{tuple(ref.shape)}. Batches must be collated as (N, C, H, W)."
                )


def _output_field(output: Any, field: str) -> Tensor:
    """One prediction from a named tuple / object, a mapping, or the official 6-tuple."""
    if isinstance(output, Mapping):
        if field in output:
            return output[field]
    elif hasattr(output, field):
        return getattr(output, field)
    elif isinstance(output, Sequence) and len(output) == len(_OUTPUT_FIELDS):
        return output[_OUTPUT_FIELDS.index(field)]
    raise KeyError(
        f"P3MLoss: the model output has no '{field}'. Expected a P3MOutput, a mapping with keys "
        f"{_OUTPUT_FIELDS}, or the official 6-tuple in that order; got {type(output).__name__}."
    )
