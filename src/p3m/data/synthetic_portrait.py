"""Drawing one synthetic portrait: a person-like silhouette with soft edges, and its ground truth.

Each picture is a person-like silhouette (head, neck, shoulders) with soft edges, a hair cap and thin
hair strands of fractional alpha, a textured foreground, a varied background and a face with simple
features. Composites are `alpha * fg + (1 - alpha) * bg`; in the blurred image the face is replaced by a
strongly blurred copy only where the face mask is set, and the face mask lies where alpha is 1, so the
blurred image, `fg_blurred`, `bg` and the alpha are consistent. :mod:`p3m.data.synthetic` keeps a
dataset of them on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# Bump when the drawing changes so existing synthetic datasets are regenerated.
GENERATOR_VERSION = 1
_SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel geometry at tiny sizes
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class Portrait:
    """One synthetic portrait; every array is uint8, colour arrays are RGB (H, W, 3).

    Attributes:
        fg: foreground of `original`.
        bg: background.
        alpha: alpha matte (H, W).
        facemask: face region (H, W), 0 or 255; alpha is 255 wherever it is set.
        original: `alpha * fg + (1 - alpha) * bg`, rounded.
        blurred: `original` with the face replaced by a blurred copy where `facemask` is set.
        fg_blurred: foreground of `blurred` (`fg` with the blurred face).
    """

    fg: np.ndarray
    bg: np.ndarray
    alpha: np.ndarray
    facemask: np.ndarray
    original: np.ndarray
    blurred: np.ndarray
    fg_blurred: np.ndarray


@dataclass(frozen=True)
class FaceCrop:
    """A square source face for P3M-CP: RGB image (S, S, 3) and its 0/255 face mask (S, S)."""

    image: np.ndarray
    mask: np.ndarray


def _pt(x: float, y: float) -> tuple[int, int]:
    return round(x * _ONE), round(y * _ONE)


def _ellipse(
    canvas: np.ndarray,
    center: tuple[float, float],
    axes: tuple[float, float],
    angle: float,
    color: float | tuple[float, ...],
) -> None:
    """Filled, anti-aliased ellipse with sub-pixel centre and axes (drawn in place)."""
    cv2.ellipse(
        canvas,
        _pt(*center),
        (max(1, round(axes[0] * _ONE)), max(1, round(axes[1] * _ONE))),
        angle,
        0,
        360,
        color,
        -1,
        cv2.LINE_AA,
        _SHIFT,
    )


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a random grid upsampled bicubically."""
    grid = rng.uniform(-1.0, 1.0, size=(cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised row (H, 1) and column (1, W) coordinates in [0, 1]; they broadcast to (H, W)."""
    return np.linspace(0, 1, h, dtype=np.float32)[:, None], np.linspace(0, 1, w, dtype=np.float32)[None]


def _grain(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """Zero-mean pixel noise with standard deviation `sigma` (uniform: 4x cheaper than Gaussian)."""
    return (rng.random((h, w, 3), dtype=np.float32) - 0.5) * np.float32(sigma * 12**0.5)


def _random_colour(rng: np.random.Generator, low: float = 20.0, high: float = 235.0) -> np.ndarray:
    return rng.uniform(low, high, size=3).astype(np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A gradient, smooth-noise or shapes background with fine grain, float32 RGB in [0, 255]."""
    yy, xx = _coords(h, w)
    kind = int(rng.integers(3))
    c0, c1 = _random_colour(rng), _random_colour(rng)
    if kind == 0:  # linear gradient in a random direction
        theta = rng.uniform(0, 2 * np.pi)
        t = (np.cos(theta) * xx + np.sin(theta) * yy)[..., None]
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        bg = c0 * (1 - t) + c1 * t
    elif kind == 1:  # blotchy low-frequency colour field
        bg = c0 + 70.0 * _smooth_noise(rng, h, w, int(rng.integers(3, 7)), 3)
    else:  # flat colour with random rectangles and discs (uint8: cv2 anti-aliases only 8-bit images)
        bg = np.empty((h, w, 3), np.uint8)
        bg[:] = _to_uint8(c0)
        for _ in range(int(rng.integers(4, 10))):
            colour = tuple(float(c) for c in _random_colour(rng))
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            size = rng.uniform(0.08, 0.35) * min(h, w)
            if rng.random() < 0.5:
                cv2.rectangle(bg, _pt(x, y), _pt(x + size, y + 0.7 * size), colour, -1, cv2.LINE_AA, _SHIFT)
            else:
                _ellipse(bg, (x, y), (size / 2, size / 2), 0.0, colour)
    bg = bg.astype(np.float32) + _grain(rng, h, w, 4.0)
    return np.clip(bg, 0, 255)


def _clothes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Striped, shaded cloth texture covering the whole frame (fg is defined everywhere)."""
    yy, xx = _coords(h, w)
    base, stripe = _random_colour(rng), _random_colour(rng)
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(0.04, 0.15)
    phase = (np.cos(theta) * xx * w + np.sin(theta) * yy * h) / (period * min(h, w))
    t = (0.5 + 0.5 * np.sin(2 * np.pi * phase))[..., None] * rng.uniform(0.3, 1.0)
    cloth = base * (1 - t) + stripe * t + 25.0 * _smooth_noise(rng, h, w, 4, 3)
    return np.clip(cloth + _grain(rng, h, w, 3.0), 0, 255)


def _face_features(
    canvas: np.ndarray, rng: np.random.Generator, center: tuple[float, float], axes: tuple[float, float]
) -> None:
    """Eyes, brows, nose and mouth inside the face ellipse (drawn in place on uint8 RGB)."""
    fx, fy = center
    ax, ay = axes
    dark = tuple(float(c) for c in rng.uniform(10, 60, size=3))
    lips = (float(rng.uniform(150, 210)), float(rng.uniform(40, 90)), float(rng.uniform(50, 100)))
    eye_dx, eye_y = 0.38 * ax, fy - 0.18 * ay
    for side in (-1, 1):
        ex = fx + side * eye_dx
        _ellipse(canvas, (ex, eye_y), (0.17 * ax, 0.09 * ay), 0.0, (235.0, 235.0, 230.0))
        _ellipse(canvas, (ex, eye_y), (0.07 * ax, 0.07 * ay), 0.0, dark)
        brow = [_pt(ex - 0.2 * ax, eye_y - 0.2 * ay), _pt(ex + 0.2 * ax, eye_y - 0.24 * ay)]
        cv2.polylines(canvas, [np.array(brow, np.int32)], False, dark, 1, cv2.LINE_AA, _SHIFT)
    nose = [_pt(fx, fy - 0.05 * ay), _pt(fx - 0.07 * ax, fy + 0.2 * ay), _pt(fx + 0.04 * ax, fy + 0.24 * ay)]
    cv2.polylines(canvas, [np.array(nose, np.int32)], False, dark, 1, cv2.LINE_AA, _SHIFT)
    _ellipse(canvas, (fx, fy + 0.5 * ay), (0.3 * ax, 0.09 * ay), float(rng.uniform(-8, 8)), lips)


def _skin(rng: np.random.Generator) -> np.ndarray:
    tone = rng.uniform(0.35, 1.0)
    return np.array([225 * tone + 20, 180 * tone + 15, 150 * tone + 10], np.float32)


def _hair_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform([15, 10, 5], [160, 120, 80]).astype(np.float32)


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 10) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _alpha_layers(
    rng: np.random.Generator, h: int, w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Body, hair-cap and strand coverage (float32 in [0, 1]) and the head geometry."""
    scale = min(h, w)
    cx = w * rng.uniform(0.42, 0.58)
    hrx = w * rng.uniform(0.15, 0.19)
    hry = min(hrx * rng.uniform(1.15, 1.35), h * 0.21)
    hy = h * rng.uniform(0.27, 0.35)
    tilt = float(rng.uniform(-8, 8))
    shoulder_y = hy + hry * rng.uniform(1.15, 1.35)

    body = np.zeros((h, w), np.uint8)
    _ellipse(body, (cx, hy), (hrx, hry), tilt, 255)
    neck_w = hrx * rng.uniform(0.4, 0.55)
    neck = [_pt(cx - neck_w, hy + 0.5 * hry), _pt(cx + neck_w, hy + 0.5 * hry)]
    neck += [_pt(cx + neck_w * 1.2, shoulder_y + 0.1 * hry), _pt(cx - neck_w * 1.2, shoulder_y + 0.1 * hry)]
    cv2.fillPoly(body, [np.array(neck, np.int32)], 255, cv2.LINE_AA, _SHIFT)
    torso_ry = max(h - shoulder_y, 1.0) * rng.uniform(0.75, 1.0)
    torso_c = (cx + w * rng.uniform(-0.04, 0.04), shoulder_y + torso_ry)
    _ellipse(body, torso_c, (w * rng.uniform(0.32, 0.45), torso_ry), float(rng.uniform(-4, 4)), 255)
    edge_sigma = max(0.5, scale / 256 * rng.uniform(0.6, 1.4))
    body_a = cv2.GaussianBlur(body.astype(np.float32) / 255.0, (0, 0), edge_sigma)

    # A hair cap over the top of the head: a slightly larger ellipse, cut below the brow, fuzzier edge.
    cap = np.zeros((h, w), np.float32)
    _ellipse(cap, (cx, hy - 0.06 * hry), (hrx * 1.1, hry * 1.06), tilt, 1.0)
    cap[int(np.clip(hy + 0.1 * hry, 0, h)) :] = 0.0
    cap_a = cv2.GaussianBlur(cap, (0, 0), max(0.8, 2.5 * edge_sigma))

    # Thin strands sprouting from the upper contour: anti-aliased 1 px curves give fractional alpha.
    # Drawn in ascending opacity so cv2's AA blending only ever raises coverage (a running maximum).
    strands = np.zeros((h, w), np.uint8)
    count = int(rng.integers(30, 70))
    for opacity in np.sort(rng.uniform(0.3, 0.95, size=count)):
        theta = rng.uniform(np.pi * 1.05, np.pi * 1.95)
        direction = np.array([np.cos(theta), np.sin(theta)])
        start = np.array([cx, hy]) + 0.97 * np.array([hrx, hry]) * direction
        length = hry * rng.uniform(0.15, 0.6)
        turn = rng.uniform(-0.5, 0.5)
        rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]]) @ direction
        end = start + length * rot
        normal = np.array([-rot[1], rot[0]])
        ctrl = (start + end) / 2 + normal * length * rng.uniform(-0.35, 0.35)
        curve = (_bezier(start, ctrl, end) * _ONE).round().astype(np.int32)
        cv2.polylines(strands, [curve], False, round(255 * opacity), 1, cv2.LINE_AA, _SHIFT)
    geometry = {"cx": cx, "hy": hy, "hrx": hrx, "hry": hry, "tilt": tilt}
    return body_a, cap_a, strands.astype(np.float32) / 255.0, geometry


def render_portrait(rng: np.random.Generator, height: int, width: int) -> Portrait:
    """Draw one synthetic portrait.

    Args:
        rng: the generator every random choice is drawn from (the only source of randomness).
        height: image height in pixels.
        width: image width in pixels.

    Returns:
        The portrait's layers and composites; see `Portrait`.
    """
    h, w = int(height), int(width)
    body_a, cap_a, strand_a, g = _alpha_layers(rng, h, w)
    alpha = _to_uint8(255.0 * np.maximum(np.maximum(body_a, cap_a), strand_a))

    # Face ellipse in the lower part of the head, shrunk to where alpha is exactly 1.
    face_c = (g["cx"] + g["hrx"] * rng.uniform(-0.05, 0.05), g["hy"] + 0.12 * g["hry"])
    face_ax = (0.62 * g["hrx"], 0.68 * g["hry"])
    face = np.zeros((h, w), np.uint8)
    _ellipse(face, face_c, face_ax, g["tilt"], 255)
    facemask = np.where((face >= 128) & (alpha == 255), 255, 0).astype(np.uint8)

    fg = _clothes(rng, h, w)
    skin8 = np.zeros((h, w), np.uint8)
    _ellipse(skin8, (g["cx"], g["hy"]), (g["hrx"] * 1.05, g["hry"] * 1.05), g["tilt"], 255)
    cv2.rectangle(
        skin8,
        _pt(g["cx"] - 0.7 * g["hrx"], g["hy"]),
        _pt(g["cx"] + 0.7 * g["hrx"], g["hy"] + 1.5 * g["hry"]),
        255,
        -1,
        cv2.LINE_AA,
        _SHIFT,
    )
    skin_region = skin8.astype(np.float32) / 255.0
    yy, _ = _coords(h, w)
    skin = _skin(rng) * (1.05 - 0.15 * yy[..., None]) + 6.0 * _smooth_noise(rng, h, w, 6, 1)
    fg = fg * (1 - skin_region[..., None]) + skin * skin_region[..., None]
    hair = _hair_colour(rng) + 20.0 * _smooth_noise(rng, h, w, 8, 3)
    # Hair colour wherever hair has coverage, except on the face, extended a little beyond the strands
    # so the estimated-fg-like colours around hair stay hair-coloured.
    hair_w = cv2.dilate(np.maximum(cap_a, strand_a), np.ones((3, 3), np.uint8))
    hair_w = np.clip(hair_w * 2.0, 0.0, 1.0) * (1.0 - face.astype(np.float32) / 255.0)
    fg = fg * (1 - hair_w[..., None]) + hair * hair_w[..., None]
    fg8 = _to_uint8(fg)
    _face_features(fg8, rng, face_c, face_ax)
    bg8 = _to_uint8(_background(rng, h, w))

    a = alpha.astype(np.float32)[..., None] / 255.0
    original = _to_uint8(a * fg8 + (1.0 - a) * bg8)
    # P3M-10k anonymizes faces with a strong Gaussian blur; pasting only inside the mask keeps every
    # other pixel of the blurred image identical to the original.
    sigma = max(1.5, 0.3 * face_ax[0])
    inside = facemask[..., None] > 0
    blurred = np.where(inside, cv2.GaussianBlur(original, (0, 0), sigma), original)
    fg_blurred = np.where(inside, blurred, fg8)
    return Portrait(fg8, bg8, alpha, facemask, original, blurred, fg_blurred)


def render_face_crop(rng: np.random.Generator, side: int) -> FaceCrop:
    """Draw one square source face (a public-face-dataset stand-in) and its face-parsing-like mask.

    Args:
        rng: the generator every random choice is drawn from.
        side: output side length in pixels.

    Returns:
        The RGB face image and the 0/255 mask of the face (skin, eyes, brows, nose, mouth; no hair).
    """
    s = int(side)
    image = _to_uint8(_background(rng, s, s))
    centre = (s * rng.uniform(0.46, 0.54), s * rng.uniform(0.5, 0.56))
    head_ax = (s * rng.uniform(0.3, 0.36), s * rng.uniform(0.38, 0.44))
    hair = tuple(float(c) for c in _hair_colour(rng))
    _ellipse(image, (centre[0], centre[1] - 0.08 * head_ax[1]), (head_ax[0] * 1.12, head_ax[1]), 0.0, hair)
    face_ax = (head_ax[0] * 0.9, head_ax[1] * 0.85)
    _ellipse(image, centre, face_ax, 0.0, tuple(float(c) for c in _skin(rng)))
    _face_features(image, rng, centre, face_ax)
    mask = np.zeros((s, s), np.uint8)
    _ellipse(mask, centre, face_ax, 0.0, 255)
    return FaceCrop(image, np.where(mask >= 128, 255, 0).astype(np.uint8))
