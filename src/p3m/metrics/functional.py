"""Matting errors as the P3M papers report them: a functional, per-image core.

Every function takes a predicted alpha and the ground-truth alpha (and a trimap where needed) and
returns one score per image: a 0-dim tensor for an (H, W) input, shape (N,) for (N, H, W) or
(N, 1, H, W). Scores are float64 on the input's device.

Conventions (those of the official ``evaluate.py`` of P3M / P3M-Net, which computes on float64 numpy
arrays with prediction = png / 255 and alpha = mask / 255):

- ``sad`` (key ``sad``): sum ``|d|`` over the whole image / 1000, d = pred - alpha;
- ``mse`` (``mse``): sum d**2 / (H * W), no scale;
- ``mad`` (``mad``): sum ``|d|`` / (H * W), no scale;
- ``gradient_error`` (``grad``): sum ``(|grad pred| - |grad alpha|)**2`` with Gaussian derivatives
  (sigma 1.4) / 10;
- ``connectivity_error`` (``conn``): connectivity error over thresholds 0.1 .. 1.0, / 1000;
- ``sad_trimap`` (``sad_t``): pred forced to 1 where trimap == 255 and 0 where trimap == 0, then
  sum ``|d|`` over the whole image / 1000;
- ``mse_trimap`` (``mse_t``): same forcing, sum d**2 / #(trimap == 128);
- ``mad_trimap`` (``mad_t``): same forcing, sum ``|d|`` / #(trimap == 128);
- ``sad_foreground`` (``sad_fg``): sum ``|d|`` where trimap == 255 (pred not forced) / 1000;
- ``sad_background`` (``sad_bg``): sum ``|d|`` where trimap == 0 (pred not forced) / 1000.

The keys are the canonical names of :data:`p3m.metrics.METRIC_NAMES`.

Inputs: alphas are floating tensors in [0, 1] (any float dtype; converted to float64) or uint8
tensors, which are read as 8-bit images (k -> k / 255 in float64, exactly the official png / 255).
Trimaps hold only 0, 128 and 255 (uint8 or any numeric dtype). Bad ranks, shapes, ranges or trimap
values raise ``ValueError``/``TypeError`` naming the argument.

Precision note for ``conn``: its thresholds are compared in float64, so a float32 alpha of 153/255
(0.60000002) passes the official threshold 0.6000000000000001 while the official float64 0.6 does
not. Pass float64 or uint8 alphas where bit-exact parity with the official 8-bit evaluation matters.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from p3m.utils.conventions import TRIMAP_BACKGROUND, TRIMAP_FOREGROUND, TRIMAP_UNKNOWN, TRIMAP_VALUES

SAD_SCALE = 1000.0  # SAD-type and Conn values are reported divided by 1000
GRAD_SCALE = 10.0  # Grad values are reported divided by 10
GRAD_SIGMA = 1.4  # Gaussian derivative filter of the official Grad
GRAD_TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default: radius = int(4 * sigma + 0.5)
#: The official Conn thresholds, bit for bit (np.arange gives 0.30000000000000004, 0.6000000000000001, ...)
CONN_THRESHOLDS: np.ndarray = np.arange(0.0, 1.1, 0.1)
CONN_MIN_DISTANCE = 0.15  # Conn counts a pixel once it lies this far above its connectivity level


# --------------------------------------------------------------------------------------- input checks
def _as_images(x: Tensor, name: str) -> Tensor:
    """View (H, W), (N, H, W) or (N, 1, H, W) as (N, H, W); anything else is an error."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 2:
        x = x[None]
    elif x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.ndim != 3:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; expected (N, 1, H, W), (N, H, W) or (H, W) "
            "(one alpha channel per image)"
        )
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: images must not be empty")
    return x


def _as_alpha(x: Tensor, name: str) -> Tensor:
    """(N, H, W) float64 alpha in [0, 1] from a float tensor in [0, 1] or a uint8 (8-bit) tensor."""
    x = _as_images(x, name)
    if x.dtype == torch.uint8:
        return x.to(torch.float64).div_(255.0)
    if not x.is_floating_point():
        raise TypeError(
            f"{name} has dtype {x.dtype}; expected a floating tensor in [0, 1] or uint8 (0..255). "
            "Convert integer maps with x.double() / 255."
        )
    x = x.to(torch.float64)
    low, high = torch.aminmax(x)
    if not (low >= 0 and high <= 1):  # also catches NaN, which compares False
        bad = x[~((x >= 0) & (x <= 1))]
        raise ValueError(
            f"{name} must lie in [0, 1]; found {bad.numel()} value(s) outside, e.g. {bad[0].item()}. "
            "Divide 8-bit maps by 255 (or pass them as uint8); clamp network outputs."
        )
    return x


def _as_trimap(trimap: Tensor | None, shape: torch.Size, metric: str) -> Tensor:
    """(N, H, W) trimap with only 0/128/255, matching the alphas' shape."""
    if trimap is None:
        raise ValueError(f"{metric} needs a trimap (0 background, 128 unknown, 255 foreground); got None")
    trimap = _as_images(trimap, "trimap")
    if trimap.shape != shape:
        raise ValueError(
            f"trimap has shape {tuple(trimap.shape)} as (N, H, W); the alphas have {tuple(shape)}"
        )
    if trimap.dtype == torch.bool or trimap.is_complex():
        raise TypeError(f"trimap has dtype {trimap.dtype}; expected uint8 or float with values 0/128/255")
    if trimap.dtype == torch.uint8:  # one histogram pass instead of five comparisons
        counts = torch.bincount(trimap.flatten(), minlength=256)
        counts[list(TRIMAP_VALUES)] = 0
        bad = torch.nonzero(counts).flatten()[:5].tolist()
    else:
        valid = (trimap == TRIMAP_BACKGROUND) | (trimap == TRIMAP_UNKNOWN) | (trimap == TRIMAP_FOREGROUND)
        bad = [] if bool(valid.all()) else torch.unique(trimap[~valid])[:5].tolist()
    if bad:
        raise ValueError(
            f"trimap values must be 0, 128 or 255; found {bad}. A trimap in [0, 1] must be scaled by 255 "
            "and re-quantised; a resized trimap must use nearest-neighbour interpolation."
        )
    return trimap


def _prepare(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, bool]:
    """float64 (N, H, W) pred and target, and whether the caller passed a single (H, W) image."""
    single = isinstance(pred, Tensor) and pred.ndim == 2
    p = _as_alpha(pred, "pred")
    t = _as_alpha(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred and target differ in shape as (N, H, W): {tuple(p.shape)} vs {tuple(t.shape)} "
            f"(given {tuple(pred.shape)} and {tuple(target.shape)})"
        )
    if t.device != p.device:
        raise ValueError(f"pred is on {p.device} but target is on {t.device}; move both to one device")
    return p, t, single


def prepare_inputs(
    pred: Tensor, target: Tensor, trimap: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Validate and convert once: float64 (N, H, W) alphas and an (N, H, W) trimap (or None).

    Every metric accepts the result as is and then only re-checks it (no copies), which is how
    :class:`~p3m.metrics.collection.MattingMetricCollection` avoids converting the same images ten
    times.
    """
    p, t, _ = _prepare(pred, target)
    if trimap is None:
        return p, t, None
    # uint8 makes the metrics' own re-check of the trimap a single histogram pass.
    return p, t, _as_trimap(trimap, p.shape, "prepare_inputs").to(device=p.device, dtype=torch.uint8)


def _per_image(scores: Tensor, single: bool) -> Tensor:
    return scores[0] if single else scores


# ------------------------------------------------------------------------------ whole-image errors
def sad(pred: Tensor, target: Tensor) -> Tensor:
    """Sum of absolute differences over the whole image, divided by 1000 (official ``SAD``)."""
    p, t, single = _prepare(pred, target)
    return _per_image((p - t).abs_().sum((-2, -1)) / SAD_SCALE, single)


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference over the whole image: sum / (H * W), no scale (official ``MSE``)."""
    p, t, single = _prepare(pred, target)
    return _per_image((p - t).square_().sum((-2, -1)) / (p.shape[-2] * p.shape[-1]), single)


def mad(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute difference over the whole image: sum / (H * W), no scale (official ``MAD``)."""
    p, t, single = _prepare(pred, target)
    return _per_image((p - t).abs_().sum((-2, -1)) / (p.shape[-2] * p.shape[-1]), single)


# ---------------------------------------------------------------------------------- trimap errors
def _forced_difference(
    pred: Tensor, target: Tensor, trimap: Tensor | None, metric: str
) -> tuple[Tensor, Tensor, bool]:
    """(pred forced to 1 on trimap == 255 and 0 on trimap == 0) - target, the trimap, single flag."""
    p, t, single = _prepare(pred, target)
    tri = _as_trimap(trimap, p.shape, metric).to(p.device)
    # torch.where, not masked_fill_: several times faster on the CPU for these sizes.
    diff = torch.where(tri == TRIMAP_FOREGROUND, 1.0, torch.where(tri == TRIMAP_BACKGROUND, 0.0, p))
    return diff.sub_(t), tri, single


def _unknown_count(tri: Tensor, metric: str) -> Tensor:
    count = (tri == TRIMAP_UNKNOWN).sum((-2, -1)).to(torch.float64)
    empty = int((count == 0).sum())
    if empty:
        warnings.warn(
            f"{metric}: {empty} image(s) have no unknown pixels (trimap == 128), where the official code "
            "divides by zero; their score is the error sum divided by 1 instead (0 when the trimap's "
            "known regions agree with the alpha).",
            UserWarning,
            stacklevel=3,
        )
    return count.clamp(min=1.0)


def sad_trimap(pred: Tensor, target: Tensor, trimap: Tensor | None) -> Tensor:
    """Official ``SAD_TRIMAP``: pred forced to the trimap's known values, then whole-image SAD / 1000.

    The prediction is set to 1 where ``trimap == 255`` and 0 where ``trimap == 0``, so only the
    unknown region and the trimap's own disagreement with the alpha contribute.
    """
    diff, _, single = _forced_difference(pred, target, trimap, "sad_t")
    return _per_image(diff.abs_().sum((-2, -1)) / SAD_SCALE, single)


def mse_trimap(pred: Tensor, target: Tensor, trimap: Tensor | None) -> Tensor:
    """Official ``MSE_TRIMAP``: forced pred (see :func:`sad_trimap`), sum of d**2 / #unknown pixels.

    An image without unknown pixels (the official code divides by zero there) gets the error sum
    divided by 1, i.e. 0 when the trimap agrees with the alpha, and a ``UserWarning``.
    """
    diff, tri, single = _forced_difference(pred, target, trimap, "mse_t")
    return _per_image(diff.square_().sum((-2, -1)) / _unknown_count(tri, "mse_t"), single)


def mad_trimap(pred: Tensor, target: Tensor, trimap: Tensor | None) -> Tensor:
    """Official ``MAD_TRIMAP``: forced pred (see :func:`sad_trimap`), sum of ``|d|`` / #unknown pixels.

    An image without unknown pixels gets the error sum divided by 1 and a ``UserWarning``.
    """
    diff, tri, single = _forced_difference(pred, target, trimap, "mad_t")
    return _per_image(diff.abs_().sum((-2, -1)) / _unknown_count(tri, "mad_t"), single)


def _sad_region(pred: Tensor, target: Tensor, trimap: Tensor | None, value: int, metric: str) -> Tensor:
    p, t, single = _prepare(pred, target)
    tri = _as_trimap(trimap, p.shape, metric).to(p.device)
    error = torch.where(tri == value, (p - t).abs_(), 0.0)
    return _per_image(error.sum((-2, -1)) / SAD_SCALE, single)


def sad_foreground(pred: Tensor, target: Tensor, trimap: Tensor | None) -> Tensor:
    """Official ``SAD_FG``: SAD / 1000 of the unmodified prediction over ``trimap == 255``."""
    return _sad_region(pred, target, trimap, 255, "sad_fg")


def sad_background(pred: Tensor, target: Tensor, trimap: Tensor | None) -> Tensor:
    """Official ``SAD_BG``: SAD / 1000 of the unmodified prediction over ``trimap == 0``."""
    return _sad_region(pred, target, trimap, 0, "sad_bg")


# ------------------------------------------------------------------------------------------- Grad
def _gaussian_weights(sigma: float, order: int) -> list[float]:
    """Correlation weights w[m], m = -r..r, of scipy's 1-D Gaussian (derivative) filter.

    scipy convolves with ``k(m) = -m / sigma**2 * phi(m)`` for order 1; as a correlation
    (``out[i] = sum_m w[m] * x[i + m]``) that is ``w(m) = m / sigma**2 * phi(m)``.
    """
    radius = int(GRAD_TRUNCATE * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    phi /= phi.sum()
    return (phi if order == 0 else x / (sigma * sigma) * phi).tolist()


def _correlate_valid(x: Tensor, weights: list[float], dim: int) -> Tensor:
    """'Valid' 1-D correlation along ``dim`` (output shorter by 2r) with a symmetric or odd kernel."""
    r = len(weights) // 2
    n = x.shape[dim] - 2 * r
    odd = weights[r] == 0.0  # derivative kernels are odd: w(-m) = -w(m)
    out = torch.zeros_like(x.narrow(dim, r, n)) if odd else x.narrow(dim, r, n) * weights[r]
    pair = torch.empty_like(out)
    for m in range(1, r + 1):
        if odd:
            torch.sub(x.narrow(dim, r + m, n), x.narrow(dim, r - m, n), out=pair)
        else:
            torch.add(x.narrow(dim, r + m, n), x.narrow(dim, r - m, n), out=pair)
        out.add_(pair, alpha=weights[r + m])
    return out


def _reflect_index(size: int, start: int, stop: int, device: torch.device) -> Tensor:
    """Indices of positions start..stop-1 under scipy's 'reflect' extension (d c b a | a b c d | d c)."""
    idx = torch.arange(start, stop, device=device).remainder(2 * size)
    return torch.where(idx >= size, 2 * size - 1 - idx, idx)


def _gradient_magnitude_numpy(image: np.ndarray, sigma: float) -> np.ndarray:
    """|(d/dy, d/dx)| of one float64 image, with scipy's Gaussian derivative filters in float64."""
    kwargs = {"sigma": sigma, "mode": "reflect", "truncate": GRAD_TRUNCATE, "output": np.float64}
    along_rows = ndimage.gaussian_filter(image, order=(1, 0), **kwargs)
    along_cols = ndimage.gaussian_filter(image, order=(0, 1), **kwargs)
    along_rows *= along_rows
    along_cols *= along_cols
    along_rows += along_cols
    return np.sqrt(along_rows, out=along_rows)


def _gradient_error_numpy(p: Tensor, t: Tensor, sigma: float) -> Tensor:
    """Per-image Grad sums on the CPU with scipy (its C loops beat element-wise torch ops there)."""
    sums = []
    for p_img, t_img in zip(p.detach().numpy(), t.detach().numpy(), strict=True):
        error = _gradient_magnitude_numpy(p_img, sigma)
        error -= _gradient_magnitude_numpy(t_img, sigma)
        sums.append(float(np.dot(error.ravel(), error.ravel())))
    return torch.tensor(sums, dtype=torch.float64)


def _gradient_error_torch(p: Tensor, t: Tensor, sigma: float) -> Tensor:
    """Per-image Grad sums with torch element-wise ops on any device (same filters as scipy)."""
    g0, g1 = _gaussian_weights(sigma, 0), _gaussian_weights(sigma, 1)
    r = len(g0) // 2
    _, h, w = p.shape
    maps = torch.stack((p, t), dim=1)  # (N, 2, H, W): pred and target share every operation
    rows = _reflect_index(h, -r, h + r, p.device)
    cols = _reflect_index(w, -r, w + r, p.device)
    padded = maps[:, :, rows][..., cols]
    along_rows = _correlate_valid(_correlate_valid(padded, g0, 3), g1, 2)  # scipy's order=[1, 0]
    along_cols = _correlate_valid(_correlate_valid(padded, g1, 3), g0, 2)  # scipy's order=[0, 1]
    magnitude = along_rows.mul_(along_rows).add_(along_cols.mul_(along_cols)).sqrt_()
    error = magnitude[:, 0] - magnitude[:, 1]
    return error.mul_(error).sum((-2, -1))


@torch.no_grad()
def gradient_error(pred: Tensor, target: Tensor, sigma: float = GRAD_SIGMA) -> Tensor:
    """Official ``GRAD``: squared difference of Gaussian-gradient magnitudes, summed, divided by 10.

    Each map is filtered like ``scipy.ndimage.gaussian_filter(x, sigma=1.4, order=[1, 0])`` and
    ``order=[0, 1]`` (truncate 4, so 13 taps; 'reflect' borders); the score is
    ``sum((|g_pred| - |g_alpha|)**2) / 10``. Everything is float64: on the CPU with scipy's filters,
    on other devices with torch element-wise operations (no convolution kernels, so TF32 settings do
    not apply). The official code writes the filter outputs as float32; on real mattes that changes
    the value by less than 1e-6 relative.
    """
    p, t, single = _prepare(pred, target)
    if p.device.type == "cpu":
        sums = _gradient_error_numpy(p, t, sigma)
    else:
        sums = _gradient_error_torch(p, t, sigma)
    return _per_image(sums / GRAD_SCALE, single)


# ------------------------------------------------------------------------------------------- Conn
def _connectivity_depth(level: np.ndarray) -> tuple[np.ndarray, int]:
    """For one image's threshold level map, how many consecutive thresholds keep each pixel connected.

    ``level[p]`` is the number of thresholds t_1..t_10 with min(pred, alpha)[p] >= t_i, so the
    thresholded set S_i = {level >= i}. With omega_i the largest 4-connected component of S_i
    (the first in raster order on ties, like skimage's regionprops + argmax), the official l_map is
    t_{c(p)} where c(p) counts the consecutive levels 1, 2, ... whose omega contains p, and 1 when p
    is in all of the ``levels`` non-empty S_i (the official loop skips empty levels, so those pixels
    keep -1 and become 1).

    Returns:
        ``(c, levels)``: c as uint8 (H, W) and the number of non-empty levels.
    """
    depth = np.zeros(level.shape, dtype=np.uint8)
    alive: np.ndarray | None = None  # pixels in every omega so far, inside the current box
    box = (0, level.shape[0], 0, level.shape[1])
    levels = 0
    for i in range(1, len(CONN_THRESHOLDS)):
        y0, y1, x0, x1 = box
        mask = level[y0:y1, x0:x1] >= i
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            break
        levels = i
        # S_i (hence omega_i and every pixel still alive) lies in S_i's bounding box: label only that.
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        labels, _ = ndimage.label(mask[r0:r1, c0:c1])  # default structure: 4-connectivity
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        omega = labels == sizes.argmax()
        alive = omega if alive is None else alive[r0:r1, c0:c1] & omega
        box = (y0 + r0, y0 + r1, x0 + c0, x0 + c1)
        depth[box[0] : box[1], box[2] : box[3]] += alive
    return depth, levels


@torch.no_grad()
def connectivity_error(pred: Tensor, target: Tensor) -> Tensor:
    """Official ``CONN``: connectivity error with thresholds 0.1 .. 1.0, divided by 1000.

    For each threshold t_i of ``np.arange(0, 1.1, 0.1)`` (float64, so 0.6000000000000001: an 8-bit
    153/255 = 0.6 does not reach it), the largest 4-connected component of ``pred >= t & alpha >= t``
    is found; a pixel's level l is the last threshold before it left that component (1 if it never
    did), stored as float32 as the official ``l_map``. Then ``phi = 1 - d * (d >= 0.15)`` with
    ``d = x - l`` for both maps, and the score is ``sum |phi_pred - phi_alpha| / 1000``.

    The threshold levels and ``phi`` are computed in float64 on the input's device; the component
    labelling runs on the CPU (``scipy.ndimage.label``), so GPU inputs make one round trip of a
    uint8 map per image. The official code also computes distance transforms that it never uses;
    they do not affect the value and are skipped.
    """
    p, t, single = _prepare(pred, target)
    thresholds = torch.as_tensor(CONN_THRESHOLDS, dtype=torch.float64, device=p.device)
    level = torch.bucketize(torch.minimum(p, t), thresholds[1:], out_int32=True, right=True)
    # The official l_map is float32: thresholds are rounded to float32 before d = x - l in float64.
    l_values = CONN_THRESHOLDS.astype(np.float32).astype(np.float64)
    sums = []
    for p_img, t_img, level_img in zip(p, t, level.to(torch.uint8).cpu().numpy(), strict=True):
        depth, levels = _connectivity_depth(level_img)
        lookup = l_values.copy()
        lookup[levels] = 1.0  # in every non-empty level's component: the official -1 -> 1
        l_map = torch.from_numpy(lookup[depth]).to(p.device)
        # phi = 1 - d * (d >= 0.15), so |phi_p - phi_t| = |a_t - a_p| with a = d where d >= 0.15, else 0.
        d_p = p_img - l_map
        d_t = torch.sub(t_img, l_map, out=l_map)
        a_p = torch.where(d_p >= CONN_MIN_DISTANCE, d_p, 0.0)
        a_t = torch.where(d_t >= CONN_MIN_DISTANCE, d_t, 0.0)
        sums.append(a_t.sub_(a_p).abs_().sum())
    return _per_image(torch.stack(sums) / SAD_SCALE, single)
