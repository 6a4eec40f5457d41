"""Video clips with ground truth, in the layout of the video-matting evaluation sets.

RobustVideoMatting's evaluation sets (VideoMatte240K composited over backgrounds by its
``generate_videomatte_with_background_*.py``) and MatAnyone's YouTubeMatte share one layout, which
the synthetic benchmark (:mod:`p3m.data.video_benchmark`) writes too::

    <root>/<set>/<clip>/com/0000.png   the frames (the composite the model sees; .jpg also read)
    <root>/<set>/<clip>/pha/0000.png   the ground-truth alpha of each frame, same names
    (fgr/, bgr/ and other folders are ignored)

e.g. ``videomatte_512x288/videomatte_motion/0000/com/0000.png``. YouTubeMatte's frames are its
harmonised composites, ``har/``, which MatAnyone evaluates on: a clip with ``har/`` is read from it.
``root`` may also be one set (``<root>/<clip>/com``) or one clip. A clip is named by its path below
``root`` (``videomatte_motion/0000``); its frames are taken in name order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p3m.utils.conventions import IMAGE_SUFFIXES
from p3m.utils.errors import MissingInputError, UserError

FRAMES_DIRS = ("har", "com")  # the frames a clip is read from, by preference
FRAMES_DIR, ALPHA_DIR = "com", "pha"
LAYOUT = f"<root>/<set>/<clip>/{FRAMES_DIR}/0000.png with <root>/<set>/<clip>/{ALPHA_DIR}/0000.png"


@dataclass(frozen=True)
class Clip:
    """One clip: its frames and their ground-truth alphas, in order."""

    name: str
    frames: tuple[Path, ...]
    alphas: tuple[Path, ...]


def _images(folder: Path) -> dict[str, Path]:
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    }


def _frames_dir(folder: Path) -> Path | None:
    """The folder of a clip's frames, or None if ``folder`` is no clip."""
    if not (folder / ALPHA_DIR).is_dir():
        return None
    return next((folder / name for name in FRAMES_DIRS if (folder / name).is_dir()), None)


def find_clips(root: Path, key: str = "video.root") -> list[Clip]:
    """Every clip under ``root`` (the root itself, its folders, or their folders), sorted by name.

    Raises:
        MissingInputError: ``root`` is missing or holds no clip, naming the layout.
        UserError: a clip's frames and alphas do not pair up, naming the clip and a file.
    """
    if not root.is_dir():
        raise MissingInputError(f"{key}={root} is not a folder of clips ({LAYOUT})")
    children = sorted(p for p in root.iterdir() if p.is_dir())
    candidates = [root, *children, *sorted(p for child in children for p in child.iterdir())]
    folders = [p for p in candidates if p.is_dir() and _frames_dir(p) is not None]
    if not folders:
        raise MissingInputError(f"{key}={root} holds no clip: expected {LAYOUT}")
    clips = []
    for folder in folders:
        frames_dir = _frames_dir(folder)
        assert frames_dir is not None
        frames, alphas = _images(frames_dir), _images(folder / ALPHA_DIR)
        unpaired = sorted(set(frames) ^ set(alphas))
        if unpaired or not frames:
            where = frames_dir if unpaired and unpaired[0] in frames else folder / ALPHA_DIR
            detail = f"{unpaired[0]} is in {where} only" if unpaired else "it has no frames"
            raise UserError(
                f"clip {folder}: {detail}; every {frames_dir.name}/<frame> needs its {ALPHA_DIR}/<frame>"
            )
        name = folder.relative_to(root).as_posix() if folder != root else root.name
        stems = sorted(frames)
        clips.append(Clip(name, tuple(frames[s] for s in stems), tuple(alphas[s] for s in stems)))
    return clips
