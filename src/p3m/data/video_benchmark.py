"""A video-matting benchmark the repository builds itself: portraits with exact alpha, moving over
moving backgrounds, with the true alpha of every frame.

No public video set with ground truth ships with the project, and flicker can only be measured
against one. :func:`ensure_video_benchmark` writes clips in the layout of RobustVideoMatting's and
MatAnyone's evaluation sets (:mod:`p3m.data.video_clips`)::

    <root>/static/<clip>/{com,pha}/0000.png   subject moves, background still
    <root>/motion/<clip>/{com,pha}/0000.png   subject and background (camera pan and zoom) move
    <root>/video_benchmark.json               the parameters; written last

Subjects alternate between real portraits (``portraits``: a P3M-style folder of
``original_image/`` or ``blurred_image/`` with ``mask/``, e.g. the sample portraits in
``tests/fixtures/p3m_samples/validation/P3M-500-NP``; their foreground colours are estimated with
pymatting) and synthetic ones (:mod:`p3m.data.synthetic_portrait`, exact foreground). Backgrounds
are synthetic. The subject's motion follows RobustVideoMatting's motion augmentation: a random
affine transform (translation, scale, rotation) at three key frames, eased in between, so the
subject moves smoothly and stops and turns as a person does. Each frame is ``alpha * fg + (1 - alpha)
* bg`` with the warped alpha, which is the frame's ground truth. The second motion clip cuts to
another subject and background halfway, so a stabiliser that does not restart at cuts is seen.

Every clip draws from its own generator seeded by (seed, set, index): the same parameters give the
same benchmark, bit for bit.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from p3m.data.fgbg import estimate_fg_bg
from p3m.data.io import read_image, read_mask
from p3m.data.synthetic_portrait import GENERATOR_VERSION, render_portrait
from p3m.utils.conventions import IMAGE_SUFFIXES
from p3m.utils.errors import MissingInputError, UserError
from p3m.utils.files import write_bytes_atomic, write_image

log = logging.getLogger(__name__)

MANIFEST_NAME = "video_benchmark.json"
BENCHMARK_VERSION = 1  # bump when the clips change, so existing benchmarks are refused as outdated
SETS = ("static", "motion")
CUT_CLIP = 1  # index of the motion clip that cuts to another shot halfway
BACKGROUND_MARGIN = 1.4  # a moving background is cropped from a canvas this much larger than a frame


@dataclass(frozen=True)
class Subject:
    """A portrait at frame size: foreground colours (H, W, 3) and alpha (H, W), uint8."""

    fg: np.ndarray
    alpha: np.ndarray


def _cover(image: np.ndarray, height: int, width: int, interpolation: int) -> np.ndarray:
    """Resize to cover (height, width) and crop: centred horizontally, kept at the bottom (a bust)."""
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    resized = cv2.resize(image, size, interpolation=interpolation)
    x0 = (size[0] - width) // 2
    return np.ascontiguousarray(resized[size[1] - height :, x0 : x0 + width])


def real_subjects(folder: Path, height: int, width: int) -> list[Subject]:
    """The portraits of a P3M-style folder at frame size, foreground estimated (sorted by name).

    Raises:
        MissingInputError: the folder has no ``original_image/`` or ``blurred_image/`` with ``mask/``.
    """
    images = next((folder / d for d in ("original_image", "blurred_image") if (folder / d).is_dir()), None)
    if images is None or not (folder / "mask").is_dir():
        raise MissingInputError(
            f"video.benchmark.portraits={folder}: expected original_image/ (or blurred_image/) and mask/ "
            "as in P3M-10k; set video.benchmark.portraits=null for synthetic portraits only"
        )
    subjects = []
    for path in sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        mask = folder / "mask" / f"{path.stem}.png"
        if not mask.is_file():
            continue
        image = _cover(read_image(path), height, width, cv2.INTER_AREA)
        alpha = _cover(read_mask(mask), height, width, cv2.INTER_AREA)
        subjects.append(Subject(estimate_fg_bg(image, alpha)[0], alpha))
    if not subjects:
        raise MissingInputError(f"video.benchmark.portraits={folder}: no image with a mask/<stem>.png")
    return subjects


def _ease(x: np.ndarray) -> np.ndarray:
    """Smoothstep: starts and stops at zero speed."""
    return x * x * (3 - 2 * x)


def _keyframed(rng: np.random.Generator, frames: int, low: float, high: float) -> np.ndarray:
    """One motion parameter per frame: random values at the start, middle and end, eased between."""
    keys = rng.uniform(low, high, 3)
    t = np.linspace(0.0, 2.0, frames)
    first = np.minimum(t, 1.0)
    second = np.clip(t - 1.0, 0.0, 1.0)
    return keys[0] + (keys[1] - keys[0]) * _ease(first) + (keys[2] - keys[1]) * _ease(second)


def subject_motion(rng: np.random.Generator, frames: int, height: int, width: int) -> list[np.ndarray]:
    """2x3 affine matrices of a smooth random motion about the bottom centre (the bust stays cut by
    the frame's bottom edge): shift up to 15 % of the width sideways and 8 % of the height down,
    scale 0.8-1.1, rotation up to 6 degrees."""
    shift_x = _keyframed(rng, frames, -0.15 * width, 0.15 * width)
    shift_y = _keyframed(rng, frames, 0.0, 0.08 * height)
    scale = _keyframed(rng, frames, 0.8, 1.1)
    angle = _keyframed(rng, frames, -6.0, 6.0)
    centre = (width / 2, float(height))
    matrices = []
    for t in range(frames):
        matrix = cv2.getRotationMatrix2D(centre, float(angle[t]), float(scale[t]))
        matrix[:, 2] += (shift_x[t], shift_y[t])
        matrices.append(matrix)
    return matrices


def camera_motion(rng: np.random.Generator, frames: int, height: int, width: int) -> list[np.ndarray]:
    """2x3 matrices cropping a frame from a background canvas ``BACKGROUND_MARGIN`` times larger:
    a smooth pan (up to the canvas's margin) and zoom (1-1.15)."""
    spare_x, spare_y = (BACKGROUND_MARGIN - 1) * width, (BACKGROUND_MARGIN - 1) * height
    x, y = _keyframed(rng, frames, 0.0, spare_x), _keyframed(rng, frames, 0.0, spare_y)
    zoom = _keyframed(rng, frames, 1.0, 1.15)
    return [np.array([[z, 0.0, -xi * z], [0.0, z, -yi * z]]) for xi, yi, z in zip(x, y, zoom, strict=True)]


def render_clip(
    subject: Subject, background: np.ndarray, rng: np.random.Generator, frames: int, moving_camera: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame RGB, alpha) of each frame: the subject moving over a still or moving background."""
    height, width = subject.alpha.shape
    motion = subject_motion(rng, frames, height, width)
    camera = camera_motion(rng, frames, height, width) if moving_camera else None
    out = []
    for t in range(frames):
        fg = cv2.warpAffine(subject.fg, motion[t], (width, height), borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(subject.alpha, motion[t], (width, height))
        bg = background if camera is None else cv2.warpAffine(background, camera[t], (width, height))
        a = alpha.astype(np.float32)[:, :, None] / 255.0
        frame = np.clip(a * fg + (1.0 - a) * bg + 0.5, 0, 255).astype(np.uint8)
        out.append((frame, alpha))
    return out


def _params(
    clips: int, frames: int, size: Any, seed: int, portraits: str | os.PathLike[str] | None
) -> dict[str, Any]:
    height, width = (int(v) for v in size)
    if min(height, width) < 64 or int(clips) < 1 or int(frames) < 2:
        raise UserError(
            f"video.benchmark: clips={clips}, frames={frames}, size={list(size)}: expected at least 1 clip "
            "of 2 frames and 64 px per side"
        )
    source = None if portraits is None else str(Path(portraits).expanduser().absolute())
    return {
        "version": [BENCHMARK_VERSION, GENERATOR_VERSION],
        "clips": int(clips),
        "frames": int(frames),
        "size": [height, width],
        "seed": int(seed),
        "portraits": source,
    }


def _read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((root / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def ensure_video_benchmark(
    root: str | os.PathLike[str],
    clips: int = 4,
    frames: int = 30,
    size: tuple[int, int] = (256, 192),
    seed: int = 0,
    portraits: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the benchmark at ``root`` (missing or empty) unless the same one is there already.

    Args:
        root: where the clips go.
        clips: clips per set (``static`` and ``motion``).
        frames: frames per clip.
        size: (height, width) of the frames.
        seed: base seed of every random choice.
        portraits: a P3M-style folder of real portraits with alpha, alternating with synthetic
            subjects; None for synthetic subjects only.

    Raises:
        UserError: bad parameters, or ``root`` holds something else (another benchmark's parameters,
            or files that are not this benchmark's); nothing is changed then.
    """
    root = Path(root).expanduser().absolute()
    params = _params(clips, frames, size, seed, portraits)
    manifest = _read_manifest(root)
    if manifest is not None and manifest.get("params") == params:
        return root
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        found = "a benchmark made with other parameters" if manifest else "other files"
        raise UserError(
            f"video.root={root} holds {found}; nothing was changed. Delete it to rebuild the benchmark, or "
            f"set video.root to another folder (parameters wanted: {params})"
        )
    height, width = params["size"]
    real = [] if portraits is None else real_subjects(Path(portraits), height, width)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        shots = 0  # every other shot (across clips) takes a real portrait, when there are some
        for set_index, name in enumerate(SETS):
            for index in range(params["clips"]):
                rng = np.random.default_rng([params["seed"], set_index, index])
                lengths = [params["frames"]]
                if name == "motion" and index == CUT_CLIP:
                    lengths = [params["frames"] - params["frames"] // 2, params["frames"] // 2]
                rendered = []
                for length in lengths:
                    synthetic = render_portrait(rng, height, width)
                    subject = Subject(synthetic.fg, synthetic.alpha)
                    if real and shots % 2 == 0:
                        subject = real[shots // 2 % len(real)]
                    shots += 1
                    moving = name == "motion"
                    canvas = (round(height * BACKGROUND_MARGIN), round(width * BACKGROUND_MARGIN))
                    background = render_portrait(rng, *(canvas if moving else (height, width))).bg
                    rendered += render_clip(subject, background, rng, length, moving_camera=moving)
                clip = tmp / name / f"{index:04d}"
                for folder in ("com", "pha"):
                    (clip / folder).mkdir(parents=True)
                for t, (frame, alpha) in enumerate(rendered):
                    write_image(clip / "com" / f"{t:04d}.png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                    write_image(clip / "pha" / f"{t:04d}.png", alpha)
        manifest = {"generator": __name__, "params": params, "layout": "<set>/<clip>/{com,pha}/0000.png"}
        write_bytes_atomic(tmp / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())
        if root.exists():
            root.rmdir()  # empty: checked above
        os.rename(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote the video benchmark to %s (%s)", root, params)
    return root
