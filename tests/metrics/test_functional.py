"""The functional matting metrics: hand-computed cases, an independent reference, input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.measure import label as skimage_label

from p3m.metrics import functional as F

# ------------------------------------------------------------------------ independent reference
# Written from the definitions in the official evaluate.py with different tools (skimage labels,
# scipy's own Gaussian filters in float64, a plain per-threshold loop), one image at a time.


def ref_trimap_forced(pd: np.ndarray, tri: np.ndarray) -> np.ndarray:
    return np.where(tri == 255, 1.0, np.where(tri == 0, 0.0, pd))


def ref_grad(pd: np.ndarray, gt: np.ndarray) -> float:
    def magnitude(x: np.ndarray) -> np.ndarray:
        return np.hypot(
            ndimage.gaussian_filter(x, 1.4, order=[1, 0], output=np.float64),
            ndimage.gaussian_filter(x, 1.4, order=[0, 1], output=np.float64),
        )

    return float(((magnitude(pd) - magnitude(gt)) ** 2).sum() / 10)


def ref_conn(pd: np.ndarray, gt: np.ndarray) -> float:
    steps = np.arange(0, 1.1, 0.1)
    l_map = -np.ones(pd.shape, dtype=np.float32)
    for i in range(1, steps.size):
        labels = skimage_label((pd >= steps[i]) & (gt >= steps[i]), connectivity=1)
        if labels.max() == 0:
            continue
        areas = [(labels == k).sum() for k in range(1, labels.max() + 1)]
        omega = labels == 1 + int(np.argmax(areas))
        l_map[(l_map == -1) & ~omega] = steps[i - 1]
    l_map[l_map == -1] = 1
    phi = [1 - (x - l_map) * ((x - l_map) >= 0.15) for x in (pd, gt)]
    return float(np.abs(phi[0] - phi[1]).sum() / 1000)


def reference(name: str, pd: np.ndarray, gt: np.ndarray, tri: np.ndarray) -> float:
    """One metric of one image, float64 numpy."""
    forced = ref_trimap_forced(pd, tri) - gt
    unknown = (tri == 128).sum()
    return {
        "sad": lambda: np.abs(pd - gt).sum() / 1000,
        "mse": lambda: ((pd - gt) ** 2).mean(),
        "mad": lambda: np.abs(pd - gt).mean(),
        "grad": lambda: ref_grad(pd, gt),
        "conn": lambda: ref_conn(pd, gt),
        "sad_t": lambda: np.abs(forced).sum() / 1000,
        "mse_t": lambda: (forced**2).sum() / unknown,
        "mad_t": lambda: np.abs(forced).sum() / unknown,
        "sad_fg": lambda: np.abs(pd - gt)[tri == 255].sum() / 1000,
        "sad_bg": lambda: np.abs(pd - gt)[tri == 0].sum() / 1000,
    }[name]()


FUNCTIONS = {
    "sad": F.sad,
    "mse": F.mse,
    "mad": F.mad,
    "grad": F.gradient_error,
    "conn": F.connectivity_error,
    "sad_t": F.sad_trimap,
    "mse_t": F.mse_trimap,
    "mad_t": F.mad_trimap,
    "sad_fg": F.sad_foreground,
    "sad_bg": F.sad_background,
}
TRIMAP_NAMES = {"sad_t", "mse_t", "mad_t", "sad_fg", "sad_bg"}


def call(name: str, pred: torch.Tensor, target: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
    fn = FUNCTIONS[name]
    return fn(pred, target, trimap) if name in TRIMAP_NAMES else fn(pred, target)


def random_mattes(n: int = 3, h: int = 40, w: int = 48, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """8-bit-like portrait-ish mattes: a soft blob, a noisy prediction and the official-rule trimap."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    preds, targets, trimaps = [], [], []
    for _ in range(n):
        cy, cx, r = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, rng.uniform(0.2, 0.4) * min(h, w)
        gt = np.clip((r - np.hypot(yy - cy, xx - cx)) / 4 + 0.5, 0, 1)
        gt = np.round(gt * 255) / 255
        pd = np.clip(
            np.round((gt + rng.normal(0, 0.08, gt.shape) * (rng.random(gt.shape) < 0.3)) * 255), 0, 255
        )
        fg = ndimage.binary_erosion(gt == 1, iterations=2)
        unknown = ndimage.binary_dilation(gt > 0, iterations=2) & ~fg
        preds.append(pd / 255)
        targets.append(gt)
        trimaps.append(np.where(fg, 255, np.where(unknown, 128, 0)).astype(np.uint8))
    return tuple(torch.from_numpy(np.stack(x)) for x in (preds, targets, trimaps))


# ---------------------------------------------------------------------------- hand-computed cases
def test_constant_error_32x32() -> None:
    pred, target = torch.full((32, 32), 0.5, dtype=torch.float64), torch.zeros(32, 32, dtype=torch.float64)
    assert F.sad(pred, target).item() == pytest.approx(0.512)  # 1024 * 0.5 / 1000
    assert F.mse(pred, target).item() == pytest.approx(0.25)
    assert F.mad(pred, target).item() == pytest.approx(0.5)
    assert F.gradient_error(pred, target).item() == 0.0  # both maps are flat
    assert F.connectivity_error(pred, target).item() == 0.0  # nothing reaches 0.1 in both: l = 1


def test_trimap_metrics_32x32() -> None:
    """Rows 0-7 background, 8-23 unknown, 24-31 foreground; pred 0.4 everywhere."""
    trimap = torch.full((32, 32), 128, dtype=torch.uint8)
    trimap[:8], trimap[24:] = 0, 255
    target = torch.full((32, 32), 0.25, dtype=torch.float64)
    target[:8], target[24:] = 0.0, 1.0
    pred = torch.full((32, 32), 0.4, dtype=torch.float64)
    # Forced: 0 on bg and 1 on fg (exact), |0.4 - 0.25| = 0.15 on the 512 unknown pixels.
    assert F.sad_trimap(pred, target, trimap).item() == pytest.approx(512 * 0.15 / 1000)
    assert F.mse_trimap(pred, target, trimap).item() == pytest.approx(0.15**2)
    assert F.mad_trimap(pred, target, trimap).item() == pytest.approx(0.15)
    # Not forced: 256 fg pixels off by 0.6, 256 bg pixels off by 0.4.
    assert F.sad_foreground(pred, target, trimap).item() == pytest.approx(0.1536)
    assert F.sad_background(pred, target, trimap).item() == pytest.approx(0.1024)
    assert F.sad(pred, target).item() == pytest.approx(0.1536 + 0.1024 + 0.0768)
    assert F.mse(pred, target).item() == pytest.approx((256 * 0.36 + 256 * 0.16 + 512 * 0.0225) / 1024)


def test_conn_hole_in_a_full_matte() -> None:
    """A 4x4 zero block in pred: l = 0 there, phi_pred = 1, phi_alpha = 0 -> 16 / 1000."""
    target = torch.ones(32, 32, dtype=torch.float64)
    pred = target.clone()
    pred[10:14, 10:14] = 0.0
    assert F.connectivity_error(pred, target).item() == pytest.approx(0.016)


def test_conn_ignores_a_disconnected_island_where_both_agree() -> None:
    """Left half and a 2x2 island are 1 in pred; the island is not in the largest component."""
    target = torch.ones(32, 32, dtype=torch.float64)
    pred = torch.zeros(32, 32, dtype=torch.float64)
    pred[:, :16] = 1.0
    pred[5:7, 28:30] = 1.0
    # Island: l = 0, d = 1 for both maps -> phi 0 and 0. The other 508 zeros: phi 1 vs 0.
    assert F.connectivity_error(pred, target).item() == pytest.approx(0.508)


def test_conn_uses_float32_levels_and_the_arange_thresholds() -> None:
    """Right half 0.7 < 0.7000000000000001 (7 * 0.1): the level is t_6 = float32(0.6000000000000001)."""
    target = torch.ones(32, 32, dtype=torch.float64)
    pred = target.clone()
    pred[:, 16:] = 0.7
    level = float(np.float32(np.arange(0, 1.1, 0.1)[6]))  # 0.60000002384...
    # pred: d = 0.1 < 0.15 -> phi 1; alpha: d = 1 - level -> phi = level.
    expected = 512 * (1 - level) / 1000
    assert F.connectivity_error(pred, target).item() == pytest.approx(expected, rel=1e-12)
    assert expected != pytest.approx(512 * 0.3 / 1000)  # Conn is not SAD here


def test_conn_threshold_0_6_excludes_153_over_255() -> None:
    """153/255 == 0.6 in float64 is below np.arange's 0.6000000000000001, so the level stays 0.5."""
    target = torch.ones(32, 32, dtype=torch.float64)
    pred = torch.ones(32, 32, dtype=torch.uint8) * 255
    pred[:, 16:] = 153
    # Right half: l = 0.5; pred d = 0.1 -> phi 1; alpha d = 0.5 -> phi 0.5. 512 * 0.5 / 1000.
    assert F.connectivity_error(pred, target).item() == pytest.approx(0.256, rel=1e-12)
    assert F.connectivity_error(pred.double() / 255, target).item() == pytest.approx(0.256, rel=1e-12)
    # The documented caveat: float32(0.6) is above that threshold, which moves the level to 0.6.
    assert F.connectivity_error((pred.float() / 255), target).item() != pytest.approx(0.256, rel=1e-6)


def test_grad_of_a_vertical_step_edge() -> None:
    """A 0 -> 1 step between columns 15 and 16, target flat: only d/dx is non-zero, per column."""
    pred = torch.zeros(32, 32, dtype=torch.float64)
    pred[:, 16:] = 1.0
    sigma, radius = 1.4, 6
    phi = [math.exp(-0.5 * m * m / sigma**2) for m in range(-radius, radius + 1)]
    phi = [v / sum(phi) for v in phi]
    # d/dx at column j = sum over taps m that reach the step (j + m >= 16) of m / sigma^2 * phi(m).
    column = [
        sum(m / sigma**2 * phi[m + radius] for m in range(-radius, radius + 1) if j + m >= 16)
        for j in range(32)
    ]
    expected = 32 * sum(v * v for v in column) / 10
    assert F.gradient_error(pred, torch.zeros_like(pred)).item() == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- reference and paths
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_matches_independent_reference(name: str) -> None:
    pred, target, trimap = random_mattes()
    ours = call(name, pred, target, trimap)
    assert ours.shape == (3,) and ours.dtype == torch.float64
    for i in range(3):
        expected = reference(name, pred[i].numpy(), target[i].numpy(), trimap[i].numpy())
        assert ours[i].item() == pytest.approx(expected, rel=1e-10, abs=1e-15), i


def test_conn_on_noise_matches_reference() -> None:
    """Uniform noise: many components per level, ties, and largest components that move between levels."""
    rng = np.random.default_rng(1)
    for _ in range(10):
        pd, gt = (rng.integers(0, 256, size=(24, 20)) / 255 for _ in range(2))
        ours = F.connectivity_error(torch.from_numpy(pd), torch.from_numpy(gt)).item()
        assert ours == pytest.approx(ref_conn(pd, gt), rel=1e-12, abs=1e-15)


def test_grad_torch_path_equals_scipy_path() -> None:
    """GPU tensors take the torch implementation; on the CPU both must agree."""
    pred, target, _ = random_mattes(n=2, h=37, w=29)
    torch_sums = F._gradient_error_torch(pred, target, F.GRAD_SIGMA)
    scipy_sums = F._gradient_error_numpy(pred, target, F.GRAD_SIGMA)
    torch.testing.assert_close(torch_sums, scipy_sums, rtol=1e-12, atol=1e-12)


def test_grad_tiny_images_use_scipy_reflect_borders() -> None:
    """Images smaller than the 13-tap kernel reflect repeatedly, as scipy does."""
    pred, target, _ = random_mattes(n=1, h=5, w=3)
    expected = torch.tensor([10 * ref_grad(pred[0].numpy(), target[0].numpy())], dtype=torch.float64)
    torch.testing.assert_close(F._gradient_error_torch(pred, target, F.GRAD_SIGMA), expected)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_layouts_and_uint8(name: str) -> None:
    pred, target, trimap = random_mattes(n=2)
    batched = call(name, pred, target, trimap)
    assert call(name, pred[:, None], target[:, None], trimap[:, None]).tolist() == batched.tolist()
    single = call(name, pred[1], target[1], trimap[1])
    assert single.ndim == 0 and single.item() == batched[1].item()
    as_bytes = call(
        name, (pred * 255).round().to(torch.uint8), (target * 255).round().to(torch.uint8), trimap
    )
    torch.testing.assert_close(as_bytes, batched, rtol=1e-12, atol=0)


def test_sad_and_mse_gradients() -> None:
    """The SAD-type metrics are differentiable (is_differentiable=True) with the expected gradients."""
    pred, target, _ = random_mattes(n=1)
    for fn, expected in (
        (F.sad, torch.sign(pred - target) / 1000),
        (F.mse, 2 * (pred - target) / pred[0].numel()),
    ):
        leaf = pred.clone().requires_grad_()
        fn(leaf, target).sum().backward()
        torch.testing.assert_close(leaf.grad, expected, rtol=1e-12, atol=1e-18)


# -------------------------------------------------------------------------------------- bad input
def test_image_without_unknown_pixels_scores_zero_and_warns() -> None:
    target = torch.zeros(16, 16, dtype=torch.float64)
    target[8:] = 1.0
    trimap = (target * 255).to(torch.uint8)
    pred = torch.full_like(target, 0.3)
    with pytest.warns(UserWarning, match="no unknown pixels"):
        assert F.mse_trimap(pred, target, trimap).item() == 0.0
    with pytest.warns(UserWarning, match="no unknown pixels"):
        assert F.mad_trimap(pred, target, trimap).item() == 0.0


@pytest.mark.parametrize(
    ("pred", "target", "error", "match"),
    [
        (torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), ValueError, r"shape \(2, 3, 8, 8\)"),
        (torch.rand(8), torch.rand(8), ValueError, "expected"),
        (torch.rand(8, 8), torch.rand(8, 9), ValueError, "differ in shape"),
        (torch.rand(8, 8) * 2, torch.rand(8, 8), ValueError, r"pred must lie in \[0, 1\]"),
        (torch.rand(8, 8), torch.full((8, 8), float("nan")), ValueError, r"target must lie in \[0, 1\]"),
        (torch.ones(8, 8, dtype=torch.long), torch.rand(8, 8), TypeError, "uint8"),
        (np.zeros((8, 8)), torch.rand(8, 8), TypeError, "torch.Tensor"),
        (torch.rand(1, 0, 8), torch.rand(1, 0, 8), ValueError, "empty"),
    ],
)
def test_bad_alphas_raise(pred: object, target: torch.Tensor, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        F.sad(pred, target)  # type: ignore[arg-type]  # the wrong type, on purpose


def test_bad_trimaps_raise() -> None:
    pred, target = torch.rand(8, 8), torch.rand(8, 8)
    with pytest.raises(ValueError, match="needs a trimap"):
        F.sad_trimap(pred, target, None)
    with pytest.raises(ValueError, match=r"found \[1, 127\]"):
        F.sad_foreground(pred, target, torch.tensor([[0, 1, 127, 128] * 2] * 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"found \[0.5\]"):
        F.mse_trimap(pred, target, torch.full((8, 8), 0.5))
    with pytest.raises(ValueError, match="trimap has shape"):
        F.sad_background(pred, target, torch.zeros(8, 7, dtype=torch.uint8))
