"""Matte a video frame by frame: the video input of ``p3m predict``.

P3M-Net is an image model: each frame is matted on its own, exactly as the same picture given as a
photo (:func:`~p3m.inference.matting.predict_matte` with the same test-time settings), then the
mattes go through the stabiliser of ``video.stabilizer`` (:mod:`p3m.inference.stabilizers`; ``none``
keeps them as predicted). Frames stream from the decoder through the network to the encoders,
``video.batch_size`` frames per network pass (1 by default: a batch was no faster on the CPU; each
batched matte equals the photo's within float rounding, see
:func:`~p3m.inference.matting.predict_mattes`), so memory does not grow with the length of the
video. Outputs, in ``output=DIR``, one or more of ``video_output`` (:mod:`p3m.inference.video_io`
for the encodings):

- ``mp4`` (the default): ``DIR/<stem>_alpha.mp4`` (the matte as a grey video) and
  ``DIR/<stem>_composite.mp4`` (the frames over ``video_background``), H.264, lossy;
- ``webm``: ``DIR/<stem>_rgba.webm``, VP9 with alpha: the frames with the matte as transparency;
- ``prores``: ``DIR/<stem>_rgba.mov``, ProRes 4444 with alpha, the same for editing software;
- ``frames``: lossless PNGs, the image path's two files per frame: ``DIR/<stem>/alpha/000000.png``
  (the 8-bit matte) and ``DIR/<stem>/rgba/000000.png`` (the frame with the matte as alpha).

Every video output keeps the input's timestamps (a variable frame rate stays variable), frame count
and audio. Each is written to a hidden temporary file beside its target, renamed when complete and
checked (it must hold every frame); a failure or Ctrl-C removes it. PNG frames are written one by
one, each one whole, so an interrupted run leaves the frames done so far.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import av
import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from p3m.inference.matting import MattingSettings, composite, matte_uint8, predict_mattes, write_outputs
from p3m.inference.stabilizers import StabilizerSettings, create_stabilizer
from p3m.inference.video_io import (
    ENCODINGS,
    Frame,
    VideoInfo,
    VideoWriter,
    available_encoder,
    decode_frames,
    probe_video,
)
from p3m.utils.conventions import VIDEO_SUFFIXES
from p3m.utils.errors import SettingError, UserError
from p3m.utils.files import check_output_dir, check_outputs

log = logging.getLogger(__name__)

# video_output mode -> the encoding of its videos (frames: PNGs, no encoding)
VIDEO_OUTPUTS: dict[str, str | None] = {"mp4": "h264", "webm": "webm", "prores": "prores", "frames": None}
FRAME_DIGITS = 6  # 000000.png: names sort in frame order up to a million frames (9 hours at 30 fps)

# Writes one frame: the decoded frame, its stabilised float matte.
FrameSink = Callable[[Frame, np.ndarray], None]
Colour = tuple[int, int, int]


@dataclass(frozen=True)
class VideoJob:
    """One video to matte and where its outputs go, checked before the model loads (:func:`plan_video`)."""

    video: VideoInfo
    out_dir: Path
    modes: tuple[str, ...]
    """The ``video_output`` modes (``VIDEO_OUTPUTS``), each written in the same pass."""
    background: Colour
    """RGB colour behind the person in the composite video."""
    stabilizer: StabilizerSettings
    batch_size: int = 1
    """Frames per network pass (``video.batch_size``)."""

    @property
    def outputs(self) -> list[Path]:
        """The videos (and PNG folders) the job writes."""
        return [path for mode in self.modes for path in output_paths(self.video.path, self.out_dir, mode)]


def plan_video(cfg: DictConfig, path: Path, out_dir: Path, overwrite: bool) -> VideoJob:
    """Check a video input, its settings and its outputs (see :func:`~p3m.utils.files.check_outputs`).

    Raises:
        UserError: bad ``video_output``/``video_background``/``video.*`` settings, a file FFmpeg cannot
            read, an output folder that cannot be made, or outputs that exist without ``overwrite``.
    """
    modes, background = video_options(cfg)
    stabilizer = StabilizerSettings.from_config(cfg.get("video"))
    batch_size = frame_batch_size(cfg.get("video"))
    video = probe_video(path)
    subfolders = [sub for mode in modes for sub in video_subfolders(path, out_dir, mode)]
    check_output_dir(out_dir, subfolders)
    check_outputs(video_outputs(video, out_dir, modes), [path], overwrite=overwrite)
    return VideoJob(video, out_dir, modes, background, stabilizer, batch_size)


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


def video_options(cfg: DictConfig) -> tuple[tuple[str, ...], Colour]:
    """``cfg.video_output`` (a mode or a list of them) and ``cfg.video_background``, checked.

    Raises:
        SettingError: an unknown or repeated mode, a mode whose encoder this FFmpeg lacks, or a colour
            that is not three integers in 0..255.
    """
    value = cfg.get("video_output", "mp4")
    raw = OmegaConf.to_container(value) if OmegaConf.is_list(value) else value
    modes = tuple(str(m) for m in raw) if isinstance(raw, list) else (str(raw),)
    unknown = [m for m in modes if m not in VIDEO_OUTPUTS]
    if unknown or not modes or len(set(modes)) != len(modes):
        raise SettingError(
            f"video_output={value}: expected one of {' | '.join(VIDEO_OUTPUTS)}, or a list of them without "
            "repeats, e.g. video_output=[webm,mp4]"
        )
    for mode in modes:
        encoding = VIDEO_OUTPUTS[mode]
        if encoding is not None and available_encoder(ENCODINGS[encoding]) is None:
            raise SettingError(
                f"video_output={mode}: this FFmpeg (PyAV {av.__version__}) has no "
                f"{' or '.join(ENCODINGS[encoding].codecs)} encoder; pip install --upgrade av"
            )
    colour = cfg.get("video_background", [0, 255, 0])
    values = [] if isinstance(colour, str) or not isinstance(colour, Sequence) else list(colour)
    if len(values) != 3 or not all(type(v) is int and 0 <= v <= 255 for v in values):
        raise SettingError(
            f"video_background={colour}: expected an RGB list of three integers in 0..255, e.g. [0,255,0]"
        )
    return modes, (values[0], values[1], values[2])


def frame_batch_size(video: Mapping[str, Any] | None) -> int:
    """``video.batch_size`` (1 when the config has no ``video`` node), checked.

    Raises:
        SettingError: not a positive integer.
    """
    value = (video or {}).get("batch_size", 1)
    if type(value) is not int or value < 1:
        raise SettingError(
            f"video.batch_size={value!r}: expected a positive integer (frames per network pass)"
        )
    return value


def output_paths(video: Path, out_dir: Path, mode: str) -> tuple[Path, ...]:
    """The files of one ``video_output`` mode (the two PNG folders for ``frames``)."""
    stem = video.stem
    if mode == "mp4":
        return out_dir / f"{stem}_alpha.mp4", out_dir / f"{stem}_composite.mp4"
    if mode == "frames":
        return out_dir / stem / "alpha", out_dir / stem / "rgba"
    return (out_dir / f"{stem}_rgba.{ENCODINGS[mode].container}",)


def video_outputs(video: VideoInfo, out_dir: Path, modes: Sequence[str]) -> list[Path]:
    """Every file :func:`predict_video` writes, for :func:`~p3m.utils.files.check_outputs`.

    A PNG sequence counts the frames the file announces, and any PNG already in its folders: an
    earlier sequence would mix with the new one.
    """
    files: list[Path] = []
    for mode in modes:
        if mode != "frames":
            files += output_paths(video.path, out_dir, mode)
            continue
        folders = output_paths(video.path, out_dir, mode)
        files += [folder / f"{frame_stem(i)}.png" for folder in folders for i in range(video.frame_count)]
        files += sorted(p for folder in folders if folder.is_dir() for p in folder.glob("*.png"))
    return list(dict.fromkeys(files))


def video_subfolders(video: Path, out_dir: Path, mode: str) -> tuple[str, ...]:
    """The folders :func:`predict_video` creates in ``out_dir`` (relative), for ``check_output_dir``."""
    if mode != "frames":
        return ()
    return tuple(str(folder.relative_to(out_dir)) for folder in output_paths(video, out_dir, mode))


def frame_stem(index: int) -> str:
    """``000042``: frame files sort in frame order."""
    return f"{index:0{FRAME_DIGITS}d}"


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
    video = job.video
    job.out_dir.mkdir(parents=True, exist_ok=True)
    stabilizer = create_stabilizer(job.stabilizer)
    written = 0
    with ExitStack() as stack:
        sinks = [stack.enter_context(_sink(mode, job)) for mode in job.modes]

        def write(ready: list[tuple[Frame, np.ndarray]]) -> None:
            nonlocal written
            for frame, alpha in ready:
                for sink in sinks:
                    sink(frame, alpha)
                written += 1

        def matte(frames: list[Frame]) -> None:
            try:
                alphas = predict_mattes(net, [frame.image for frame in frames], settings)
            except ValueError as err:  # too small for the strategy: so is every frame
                raise UserError(f"input={video.path}: {err}") from None
            for frame, alpha in zip(frames, alphas, strict=True):
                write(stabilizer.push(frame.image, alpha, frame))
            progress.update(len(frames))

        progress = tqdm(total=video.frame_count or None, desc=video.path.name, unit="frame")
        with progress:
            frames = decode_frames(video)
            while batch := list(islice(frames, job.batch_size)):
                matte(batch)
            write(stabilizer.flush())
        if not written:  # probe_video read a frame: the file changed since
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


@contextmanager
def _sink(mode: str, job: VideoJob) -> Iterator[FrameSink]:
    """The writer of one ``video_output`` mode."""
    paths = output_paths(job.video.path, job.out_dir, mode)
    if mode == "frames":

        def write_pngs(frame: Frame, alpha: np.ndarray) -> None:
            write_outputs(frame.image, alpha, paths[0].parent, frame_stem(frame.index))

        yield write_pngs
    elif mode == "mp4":
        with (
            VideoWriter(paths[0], ENCODINGS["h264"], job.video) as alpha_video,
            VideoWriter(paths[1], ENCODINGS["h264"], job.video) as composite_video,
        ):

            def write_mp4(frame: Frame, alpha: np.ndarray) -> None:
                matte = matte_uint8(alpha)
                alpha_video.write(np.repeat(matte[:, :, None], 3, axis=2), frame.pts)
                composite_video.write(composite(frame.image, matte, job.background), frame.pts)

            yield write_mp4
    else:
        with VideoWriter(paths[0], ENCODINGS[mode], job.video) as rgba_video:

            def write_rgba(frame: Frame, alpha: np.ndarray) -> None:
                rgba_video.write(np.dstack([frame.image, matte_uint8(alpha)]), frame.pts)

            yield write_rgba
