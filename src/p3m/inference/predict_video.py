"""Matte a video frame by frame: the video input of ``src/predict.py``.

P3M-Net is an image model. Each frame is matted on its own, exactly as the same picture given as a
photo (:func:`~p3m.inference.matting.predict_matte` with the same test-time settings). There is no
temporal smoothing, so mattes may flicker. The outputs, in ``output=DIR``:

- ``video_output=mp4`` (the default) writes ``DIR/<stem>_alpha.mp4`` (the matte, greyscale) and
  ``DIR/<stem>_composite.mp4`` (the frames over ``video_background``). Both have the input's frame
  rate and frame count, in the ``mp4v`` codec, the one pip's OpenCV can write. It is lossy (8-bit
  YUV): the alpha video is for viewing, not an exact matte. mp4v stores even sizes only, so an odd
  side loses its last row or column (a warning says so).
- ``video_output=frames`` writes lossless PNGs, the image path's two files per frame:
  ``DIR/<stem>/alpha/000000.png`` (the 8-bit matte) and ``DIR/<stem>/rgba/000000.png`` (the frame
  with the matte as its alpha channel).

Each video is written to a hidden temporary file beside its target (``atomic_path``). It is renamed
only when complete and checked: it must read back with as many frames as were written. A failure or
Ctrl-C removes it. PNG frames are written one by one, each one whole, so an interrupted run leaves
the frames done so far.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from omegaconf import DictConfig
from torch import nn
from tqdm import tqdm

from p3m.inference.matting import MattingSettings, composite, matte_uint8, predict_matte, write_outputs
from p3m.utils.conventions import VIDEO_SUFFIXES
from p3m.utils.errors import SettingError, UserError
from p3m.utils.files import atomic_path, check_output_dir, check_outputs

log = logging.getLogger(__name__)

VIDEO_OUTPUTS: tuple[str, ...] = ("mp4", "frames")
FOURCC = "mp4v"  # the codec pip's opencv-python writes (no H.264 encoder)
FALLBACK_FPS = 25.0  #: for a file that announces no frame rate
FRAME_DIGITS = 6  # 000000.png: names sort in frame order up to a million frames (9 hours at 30 fps)

# Writes one frame: its index, the (H, W, 3) uint8 RGB frame, its (H, W) float matte.
FrameSink = Callable[[int, np.ndarray, np.ndarray], None]
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class VideoInfo:
    """What a video file announces, read before the model loads."""

    path: Path
    fps: float
    """Frames per second (:data:`FALLBACK_FPS` when the file gives none)."""
    frame_count: int
    """Frames the file announces (0: unknown; an estimate in some formats, a damaged file has fewer)."""
    height: int
    width: int


@dataclass(frozen=True)
class VideoJob:
    """One video to matte and where its outputs go, checked before the model loads (:func:`plan_video`)."""

    video: VideoInfo
    out_dir: Path
    mode: str
    """``mp4`` (alpha and composite videos) or ``frames`` (lossless PNGs)."""
    background: Colour
    """RGB colour behind the person in the composite video."""

    @property
    def outputs(self) -> tuple[Path, Path]:
        """The two videos (``mp4``) or the two PNG folders (``frames``)."""
        if self.mode == "mp4":
            return mp4_paths(self.video.path, self.out_dir)
        return frame_folders(self.video.path, self.out_dir)


def plan_video(cfg: DictConfig, path: Path, out_dir: Path, overwrite: bool) -> VideoJob:
    """Check a video input, its settings and its outputs (see :func:`~p3m.utils.files.check_outputs`).

    Raises:
        UserError: a bad ``video_output``/``video_background``, a file OpenCV cannot read, an output
            folder that cannot be made, or outputs that exist without ``overwrite``.
    """
    mode, background = video_options(cfg)
    video = open_video(path)
    check_output_dir(out_dir, video_subfolders(path, out_dir, mode))
    check_outputs(video_outputs(video, out_dir, mode), [path], overwrite=overwrite)
    return VideoJob(video, out_dir, mode, background)


def is_video(path: Path) -> bool:
    """A video input by its suffix (:data:`~p3m.utils.conventions.VIDEO_SUFFIXES`)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def single_video(paths: Sequence[Path]) -> Path | None:
    """The video among the inputs, or None for images only.

    Raises:
        UserError: a video comes with other inputs (a glob): videos are predicted one per run.
    """
    videos = [path for path in paths if is_video(path)]
    if not videos:
        return None
    if len(paths) > 1:
        raise UserError(
            f"the inputs hold {len(videos)} video(s) among {len(paths)} files ({videos[0]}, ...): predict "
            "a video on its own, input=clip.mp4 (folders and globs are for images)"
        )
    return videos[0]


def video_options(cfg: DictConfig) -> tuple[str, Colour]:
    """``cfg.video_output`` and ``cfg.video_background`` (the predict config), checked.

    Raises:
        SettingError: an unknown output mode, or a colour that is not three integers in 0..255.
    """
    mode = str(cfg.get("video_output", "mp4"))
    if mode not in VIDEO_OUTPUTS:
        raise SettingError(f"video_output={mode!r}: expected one of {' | '.join(VIDEO_OUTPUTS)}")
    colour = cfg.get("video_background", [0, 255, 0])
    values = [] if isinstance(colour, str) or not isinstance(colour, Sequence) else list(colour)
    if len(values) != 3 or not all(type(v) is int and 0 <= v <= 255 for v in values):
        raise SettingError(
            f"video_background={colour}: expected an RGB list of three integers in 0..255, e.g. [0,255,0]"
        )
    return mode, (values[0], values[1], values[2])


def open_video(path: Path) -> VideoInfo:
    """Read a video's frame rate, frame count and frame size (from its first frame).

    Raises:
        UserError: OpenCV cannot open the file as a video, or reads no frame from it.
    """
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise UserError(
                f"input={path}: OpenCV cannot open it as a video (damaged, empty, or a codec it lacks)"
            )
        ok, frame = capture.read()
        if not ok:
            raise UserError(f"input={path}: the video holds no frame OpenCV can read")
        fps, count = capture.get(cv2.CAP_PROP_FPS), capture.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        capture.release()
    if not (math.isfinite(fps) and fps > 0):
        log.warning("%s announces no frame rate: its outputs get %g fps", path, FALLBACK_FPS)
        fps = FALLBACK_FPS
    frames = int(count) if math.isfinite(count) and count > 0 else 0
    return VideoInfo(path, fps, frames, frame.shape[0], frame.shape[1])


def mp4_paths(video: Path, out_dir: Path) -> tuple[Path, Path]:
    """``<stem>_alpha.mp4`` and ``<stem>_composite.mp4`` in ``out_dir``."""
    return out_dir / f"{video.stem}_alpha.mp4", out_dir / f"{video.stem}_composite.mp4"


def frame_folders(video: Path, out_dir: Path) -> tuple[Path, Path]:
    """``<stem>/alpha`` and ``<stem>/rgba`` in ``out_dir``: the PNG sequences of ``video_output=frames``."""
    return out_dir / video.stem / "alpha", out_dir / video.stem / "rgba"


def video_outputs(video: VideoInfo, out_dir: Path, mode: str) -> list[Path]:
    """Every file :func:`predict_video` writes, for :func:`~p3m.utils.files.check_outputs`.

    A PNG sequence counts the frames the file announces, and any PNG already in its folders: an
    earlier sequence would mix with the new one.
    """
    if mode == "mp4":
        return list(mp4_paths(video.path, out_dir))
    folders = frame_folders(video.path, out_dir)
    planned = [folder / f"{frame_stem(i)}.png" for folder in folders for i in range(video.frame_count)]
    existing = sorted(p for folder in folders if folder.is_dir() for p in folder.glob("*.png"))
    return list(dict.fromkeys([*planned, *existing]))


def video_subfolders(video: Path, out_dir: Path, mode: str) -> tuple[str, ...]:
    """The folders :func:`predict_video` creates in ``out_dir`` (relative), for ``check_output_dir``."""
    if mode == "mp4":
        return ()
    return tuple(str(folder.relative_to(out_dir)) for folder in frame_folders(video, out_dir))


def frame_stem(index: int) -> str:
    """``000042``: frame files sort in frame order."""
    return f"{index:0{FRAME_DIGITS}d}"


def even_size(video: VideoInfo) -> tuple[int, int]:
    """(H, W) an mp4v file can hold: each side rounded down to an even number."""
    return video.height - video.height % 2, video.width - video.width % 2


def predict_video(net: nn.Module, job: VideoJob, settings: MattingSettings) -> int:
    """Matte every frame of ``job.video`` into ``job.out_dir`` (see the module docstring for the files).

    Args:
        net: The network in eval mode, on ``settings.device``.
        job: The video and its outputs, from :func:`plan_video`.
        settings: The test-time settings, applied to each frame as to a photo.

    Returns:
        How many frames were matted and written.

    Raises:
        UserError: the frames are too small for the test-time strategy (nothing is written).
        OSError: an output could not be written, naming it; no partial video is left.
    """
    video, out_dir, mode = job.video, job.out_dir, job.mode
    if mode == "mp4" and even_size(video) != (video.height, video.width):
        log.warning(
            "%s is %dx%d: mp4v stores even sizes, so its videos are %dx%d (video_output=frames keeps it all)",
            video.path,
            video.width,
            video.height,
            *even_size(video)[::-1],
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    sink = _mp4_sink(video, out_dir, job.background) if mode == "mp4" else _png_sink(video, out_dir)
    written = 0
    with sink as write, closing(_frames(video.path)) as frames:  # type: ignore[type-var]  # a generator: it closes
        progress = tqdm(frames, total=video.frame_count or None, desc=video.path.name, unit="frame")
        for index, image in enumerate(progress):
            try:
                alpha = predict_matte(net, image, settings)
            except ValueError as err:  # too small for the strategy: so is every frame
                raise UserError(f"input={video.path}: {err}") from None
            write(index, image, alpha)
            written += 1
        if not written:  # open_video read a frame: the file changed since
            raise UserError(f"input={video.path}: no frame could be read")
    if video.frame_count and written != video.frame_count:
        log.warning(
            "%s announces %d frames, %d could be read (a damaged file, or an estimate): wrote %d frames",
            video.path,
            video.frame_count,
            written,
            written,
        )
    return written


def _frames(path: Path) -> Iterator[np.ndarray]:
    """The (H, W, 3) uint8 RGB frames of a video, in order, up to the first that cannot be read."""
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


@contextmanager
def _png_sink(video: VideoInfo, out_dir: Path) -> Iterator[FrameSink]:
    """Each frame's ``alpha`` and ``rgba`` PNGs, written as the image path writes a photo's."""
    folder = out_dir / video.path.stem

    def write(index: int, image: np.ndarray, alpha: np.ndarray) -> None:
        write_outputs(image, alpha, folder, frame_stem(index))

    yield write


@contextmanager
def _mp4_sink(video: VideoInfo, out_dir: Path, background: Colour) -> Iterator[FrameSink]:
    """The alpha and composite videos, each renamed into place when complete and checked."""
    alpha_path, composite_path = mp4_paths(video.path, out_dir)
    height, width = even_size(video)
    with (
        _video_file(alpha_path, video.fps, (height, width), color=False) as write_alpha,
        _video_file(composite_path, video.fps, (height, width), color=True) as write_composite,
    ):

        def write(index: int, image: np.ndarray, alpha: np.ndarray) -> None:
            matte = matte_uint8(alpha)[:height, :width]
            write_alpha(matte)
            write_composite(composite(image[:height, :width], matte, background)[:, :, ::-1])  # BGR

        yield write


@contextmanager
def _video_file(
    path: Path, fps: float, size: tuple[int, int], color: bool
) -> Iterator[Callable[[np.ndarray], None]]:
    """A function that appends a frame (BGR, or grey without ``color``) to the mp4v video ``path``.

    The frames go to a temporary file that replaces ``path`` when the block ends and the file reads
    back with every frame; on any exception it is removed.

    Raises:
        OSError: the writer cannot be opened or the file is incomplete (e.g. a full disk), naming ``path``.
    """
    height, width = size
    with atomic_path(path, keep_suffix=True) as tmp:  # the writer picks the container by the suffix
        fourcc = cv2.VideoWriter_fourcc(*FOURCC)  # type: ignore[attr-defined]  # in cv2, not in its stubs
        writer = cv2.VideoWriter(str(tmp), fourcc, fps, (width, height), color)
        if not writer.isOpened():
            raise OSError(f"could not write {path}: OpenCV cannot open an {FOURCC} video writer for it")
        written = 0

        def write(frame: np.ndarray) -> None:
            nonlocal written
            writer.write(np.ascontiguousarray(frame))
            written += 1

        try:
            yield write
        finally:
            writer.release()
        _check_frame_count(tmp, path, written)


def _check_frame_count(tmp: Path, path: Path, frames: int) -> None:
    """VideoWriter.write reports no error: a written video must read back with all its frames."""
    capture = cv2.VideoCapture(str(tmp))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    if count != frames:
        raise OSError(f"could not write {path}: it reads back with {count} of its {frames} frames")
