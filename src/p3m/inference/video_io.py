"""Reading and writing videos through PyAV (FFmpeg): frames with their timestamps in, files an editor
opens out, the input's audio carried along.

Reading: :func:`probe_video` checks a file and reads what it announces; :func:`decode_frames`
streams its frames as RGB arrays with their presentation timestamps, so a variable-frame-rate video
keeps its timing. Writing: :class:`VideoWriter` encodes frames with one of ``ENCODINGS``:

- ``webm``: VP9 with an alpha channel (``yuva420p``, libvpx-vp9) in WebM, the transparent video of
  browsers and editors (FFmpeg's own VP9 decoder drops the alpha; :func:`decode_frames` reads it with
  libvpx, as browsers do);
- ``prores``: ProRes 4444 with alpha (``yuva444p10le``, prores_ks) in a QuickTime ``.mov``, the
  editing standard;
- ``h264``: H.264 (libx264, ``yuv420p``) in ``.mp4``, or MPEG-4 part 2 where libx264 is missing; odd
  sides are padded by one row or column (the edge repeated), since 4:2:0 H.264 stores even sizes.

Every output gets the input's audio: the packets are copied when the container takes the codec
(AAC into .mp4/.mov, Opus into .webm), else decoded and re-encoded (to Opus for WebM, AAC otherwise).
Audio packets are muxed as the video advances, so memory does not grow with the length of the video.

A file is written to a hidden temporary name and renamed when complete; it must then hold as many
video packets as frames were written. A write error (a full disk) raises ``OSError`` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np

from p3m.utils.errors import UserError
from p3m.utils.files import atomic_path

log = logging.getLogger(__name__)

FALLBACK_FPS = Fraction(25)  # for a file that announces no frame rate
# Decoders that keep VP8/VP9 alpha (stored beside the colour in WebM); FFmpeg's native ones drop it.
ALPHA_DECODERS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}
FULL_DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


@dataclass(frozen=True)
class VideoInfo:
    """What a video file announces, read before the model loads."""

    path: Path
    fps: Fraction
    """Average frames per second (``FALLBACK_FPS`` when the file gives none)."""
    frame_count: int
    """Frames the file announces (0: unknown; a damaged file may hold fewer)."""
    height: int
    width: int
    time_base: Fraction
    """Unit of the video stream's timestamps; the outputs keep it, so their timestamps are the input's."""
    has_audio: bool
    duration: float = 0.0
    """Seconds the file announces (0: unknown)."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``(H, W, 3)`` uint8 RGB (or ``(H, W, 4)`` RGBA with ``alpha=True``)."""

    index: int
    image: np.ndarray
    pts: int
    """Presentation time in units of the stream's ``time_base``."""


@dataclass(frozen=True)
class Encoding:
    """How one kind of output video is encoded."""

    container: str
    """FFmpeg muxer, also the file suffix (``webm``, ``mov``, ``mp4``)."""
    codecs: tuple[str, ...]
    """Encoders by preference; the first one this FFmpeg build has is used."""
    pix_fmt: str
    alpha: bool
    """Frames are RGBA and the alpha is stored."""
    even_size: bool
    """The encoder stores even sides only: odd ones are padded."""
    audio_codec: str
    """Encoder of the audio when the input's codec cannot be copied into the container."""
    options: dict[str, str] = field(default_factory=dict)


ENCODINGS: dict[str, Encoding] = {
    # realtime/cpu-used 8: the fastest VP9 on a CPU; crf 30 keeps the 8-bit alpha within a few levels
    "webm": Encoding(
        "webm",
        ("libvpx-vp9",),
        "yuva420p",
        alpha=True,
        even_size=False,
        audio_codec="libopus",
        options={"crf": "30", "b:v": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"},
    ),
    "prores": Encoding(
        "mov",
        ("prores_ks",),
        "yuva444p10le",
        alpha=True,
        even_size=False,
        audio_codec="aac",
        options={"profile": "4", "vendor": "apl0"},  # profile 4: ProRes 4444, the one with alpha
    ),
    "h264": Encoding(
        "mp4",
        ("libx264", "mpeg4"),
        "yuv420p",
        alpha=False,
        even_size=True,
        audio_codec="aac",
        options={"crf": "18", "preset": "veryfast"},
    ),
}
_CODEC_OPTIONS = {"libx264": {"crf", "preset"}, "mpeg4": set()}  # options an h264 fallback takes


def available_encoder(encoding: Encoding) -> str | None:
    """The first of ``encoding.codecs`` this FFmpeg build can encode with, or None."""
    for name in encoding.codecs:
        try:
            av.codec.Codec(name, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        return name
    return None


def probe_video(path: Path) -> VideoInfo:
    """Open a video and decode its first frame (a file whose frames cannot be read is refused now).

    Raises:
        UserError: not a video FFmpeg can open, no video stream, or no decodable frame.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"input={path}: the file holds no video stream")
            stream = container.streams.video[0]
            first = next(_decoded(container, stream), None)
            has_audio = bool(container.streams.audio)
            rate = stream.average_rate or stream.guessed_rate
            count = stream.frames
            time_base = stream.time_base
            duration = (container.duration or 0) / av.time_base
    except av.FFmpegError as err:
        raise UserError(
            f"input={path}: FFmpeg cannot read it as a video ({err}); damaged, empty, or not a video"
        ) from None
    if first is None:
        raise UserError(f"input={path}: the video holds no frame that can be decoded")
    if not rate or not math.isfinite(float(rate)) or rate <= 0:
        log.warning("%s announces no frame rate: its outputs get %s fps", path, FALLBACK_FPS)
        rate = FALLBACK_FPS
    time_base = time_base or 1 / Fraction(rate)
    frames = max(int(count or 0), 0)
    return VideoInfo(
        path, Fraction(rate), frames, first.height, first.width, time_base, has_audio, max(duration, 0.0)
    )


def _decoded(container: Any, stream: Any) -> Iterator[Any]:
    """The stream's av.VideoFrames; VP8/VP9 through libvpx, which keeps their alpha."""
    decoder = ALPHA_DECODERS.get(stream.codec_context.name)
    if decoder is None:
        yield from container.decode(stream)
        return
    context = av.CodecContext.create(decoder, "r")
    for packet in container.demux(stream):
        yield from context.decode(packet)  # type: ignore[attr-defined]  # a decoder context: its stub omits decode


def decode_frames(video: VideoInfo, alpha: bool = False) -> Iterator[Frame]:
    """The frames of ``video`` in order, up to the first that cannot be decoded (a warning says so).

    Args:
        video: From :func:`probe_video`.
        alpha: Give RGBA frames (a transparent WebM or ProRes 4444 keeps its alpha; others are opaque).
    """
    step = 1 / (video.fps * video.time_base)  # one frame, in time-base units, for frames without a pts
    index, pts = 0, None
    with av.open(str(video.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = _decoded(container, stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except av.FFmpegError as err:
                log.warning("%s: decoding stopped after %d frames (%s)", video.path, index, err)
                return
            pts = frame.pts if frame.pts is not None else (0 if pts is None else round(pts + step))
            image = frame.to_ndarray(format="rgba" if alpha else "rgb24")
            yield Frame(index, image, pts)
            index += 1


class VideoWriter:
    """Write frames to ``path`` with an :class:`Encoding`, keeping the source's timestamps and audio.

    Use as a context manager; :meth:`write` takes each frame with its ``pts`` (in
    ``source.time_base`` units). The file appears at ``path`` only when the block ends without error
    and the file holds every frame.

    Raises:
        OSError: no encoder for the format, or the file cannot be written, naming ``path`` (and saying
            so when the disk is full).
    """

    def __init__(self, path: Path, encoding: Encoding, source: VideoInfo) -> None:
        self.path, self.encoding, self.source = path, encoding, source
        codec = available_encoder(encoding)
        if codec is None:
            raise OSError(f"could not write {path}: this FFmpeg has none of {', '.join(encoding.codecs)}")
        self.codec = codec
        self.height, self.width = source.height, source.width
        if encoding.even_size:
            self.height, self.width = self.height + self.height % 2, self.width + self.width % 2
        self.frames = 0
        self._atomic = atomic_path(path, keep_suffix=True)
        self._container: Any = None
        self._audio: _AudioTrack | None = None

    def __enter__(self) -> VideoWriter:
        self._tmp = self._atomic.__enter__()
        with self._abandoned_on_error():
            self._container = av.open(str(self._tmp), "w", format=self.encoding.container)
            options = self.encoding.options
            if self.codec in _CODEC_OPTIONS:
                options = {k: v for k, v in options.items() if k in _CODEC_OPTIONS[self.codec]}
            stream = self._container.add_stream(self.codec, rate=self.source.fps, options=options)
            stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.encoding.pix_fmt
            stream.time_base = stream.codec_context.time_base = self.source.time_base
            self._stream = stream
            if self.source.has_audio:
                self._audio = _AudioTrack(self.source.path, self._container, self.encoding.audio_codec)
        return self

    def write(self, image: np.ndarray, pts: int) -> None:
        """Append one frame: ``(H, W, 4)`` RGBA for an alpha encoding, ``(H, W, 3)`` RGB otherwise."""
        if image.shape[0] != self.height or image.shape[1] != self.width:
            rows, cols = self.height - image.shape[0], self.width - image.shape[1]
            image = np.pad(image, ((0, rows), (0, cols), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(image), format="rgba" if self.encoding.alpha else "rgb24"
        )
        frame.pts, frame.time_base = pts, self.source.time_base
        try:
            if self._audio is not None:
                self._audio.mux_until(float(pts * self.source.time_base))
            self._container.mux(self._stream.encode(frame))
        except (av.FFmpegError, OSError) as err:
            raise self._error(err) from err
        self.frames += 1

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if error is not None:
            self._abandon(error)
            return
        with self._abandoned_on_error():
            self._container.mux(self._stream.encode())
            if self._audio is not None:
                self._audio.finish()
            self._container.close()
            self._container = None
            self._check(self._tmp)
        self._atomic.__exit__(None, None, None)  # the rename

    @contextlib.contextmanager
    def _abandoned_on_error(self) -> Iterator[None]:
        """Any error abandons the file; FFmpeg's and the OS's become an OSError naming it."""
        try:
            yield
        except (av.FFmpegError, OSError) as err:
            failure = self._error(err)
            self._abandon(failure)
            raise failure from err
        except BaseException as err:
            self._abandon(err)
            raise

    def _abandon(self, error: BaseException) -> None:
        """Close what is open and remove the temporary file (the error goes on propagating)."""
        if self._audio is not None:
            self._audio.close()
        if self._container is not None:
            with contextlib.suppress(av.FFmpegError, OSError):  # already failing
                self._container.close()
            self._container = None
        self._atomic.__exit__(type(error), error, error.__traceback__)

    def _check(self, tmp: Path) -> None:
        """Every frame written must be in the file (a failed write the muxer did not report shows here)."""
        with av.open(str(tmp)) as container:
            packets = sum(1 for p in container.demux(video=0) if p.size)
        if packets != self.frames:
            raise OSError(f"it holds {packets} of its {self.frames} frames")  # _error names the file

    def _error(self, err: BaseException) -> OSError:
        """``err`` as an OSError naming the file; a full disk is called one."""
        number = getattr(err, "errno", None)
        reason = getattr(err, "strerror", None) or str(err)
        if number in FULL_DISK_ERRNOS:
            reason += ": the disk is full (or a file size limit was reached); free space and run again"
        return OSError(number, f"could not write {self.path}: {reason}")


class _AudioTrack:
    """The input's first audio stream, muxed into an output as the video advances (copied or re-encoded)."""

    def __init__(self, source: Path, output: Any, fallback_codec: str) -> None:
        self._input = av.open(str(source))
        self._in_stream = self._input.streams.audio[0]
        self._output = output
        try:
            self._stream = output.add_stream_from_template(self._in_stream)
            self._copy = True
        except ValueError:  # the container does not take this codec: re-encode
            self._copy = False
            rate = self._in_stream.codec_context.sample_rate or 48000
            if fallback_codec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
                rate = 48000
            self._stream = output.add_stream(fallback_codec, rate=rate)
            layout = self._in_stream.codec_context.layout.name
            self._stream.layout = layout
            fmt = self._stream.codec_context.codec.audio_formats[0].name
            self._resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        self._packets = self._input.demux(self._in_stream)
        self._pending: Any = None

    def mux_until(self, seconds: float) -> None:
        """Mux the audio that starts before ``seconds``."""
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.dts is None:  # the demuxer's final empty packet
                continue
            if packet.pts is not None and float(packet.pts * packet.time_base) >= seconds:
                self._pending = packet
                return
            self._mux(packet)

    def finish(self) -> None:
        """Mux the rest of the audio and flush the encoder."""
        self.mux_until(math.inf)
        if not self._copy:
            self._encode(None)
            self._output.mux(self._stream.encode(None))
        self.close()

    def close(self) -> None:
        self._input.close()

    def _mux(self, packet: Any) -> None:
        if self._copy:
            packet.stream = self._stream
            self._output.mux(packet)
            return
        for frame in packet.decode():
            self._encode(frame)

    def _encode(self, frame: Any) -> None:
        for resampled in self._resampler.resample(frame):
            self._output.mux(self._stream.encode(resampled))
