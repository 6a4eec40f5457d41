"""Tiny test videos written with PyAV: frames at chosen times (variable frame rate) and a tone."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MS = Fraction(1, 1000)
AUDIO_RATE = 44100


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    times_ms: list[int] | None = None,
    audio_seconds: float | None = 0.5,
    codec: str = "libx264",
) -> Path:
    """Encode ``(H, W, 3)`` uint8 RGB frames shown at ``times_ms`` (default: 12.5 fps, constant),
    with a 440 Hz mono AAC tone of ``audio_seconds`` (None: no audio), lossless where the codec allows.
    No frames: a file with the audio only."""
    # a constant rate counts in frames: AVI stores one frame per time-base tick
    time_base = MS if times_ms is not None else Fraction(2, 25)
    times = times_ms if times_ms is not None else list(range(len(frames)))
    height, width = frames[0].shape[:2] if frames else (64, 64)
    with av.open(str(path), "w") as container:
        options = {"qp": "0", "preset": "ultrafast"} if codec == "libx264" else {}
        video = container.add_stream(codec, rate=Fraction(25, 2), options=options) if frames else None
        if video is not None:
            video.width, video.height = width, height
            video.pix_fmt = (
                "yuv444p" if codec == "libx264" else video.codec_context.codec.video_formats[0].name
            )
            video.time_base = video.codec_context.time_base = time_base
        audio = container.add_stream("aac", rate=AUDIO_RATE) if audio_seconds else None
        for image, time in zip(frames, times, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = time, time_base
            container.mux(video.encode(frame))
        if video is not None:
            container.mux(video.encode())
        if audio is not None:
            n = int(AUDIO_RATE * audio_seconds)
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / AUDIO_RATE)).astype(np.float32)[None]
            samples = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
            samples.sample_rate, samples.pts = AUDIO_RATE, 0
            container.mux(audio.encode(samples))
            container.mux(audio.encode())
    return path


def read_clip(path: Path, alpha: bool = False) -> tuple[list[np.ndarray], list[float], dict[str, object]]:
    """Every frame (RGB, or RGBA with ``alpha``), its time in seconds, and facts about the file."""
    from p3m.inference.video_io import decode_frames, probe_video

    info = probe_video(path)
    frames = list(decode_frames(info, alpha=alpha))
    with av.open(str(path)) as container:
        audio = [s.codec_context.name for s in container.streams.audio]
        codec = container.streams.video[0].codec_context.name
    facts = {"width": info.width, "height": info.height, "fps": info.fps, "audio": audio, "codec": codec}
    return [f.image for f in frames], [float(f.pts * info.time_base) for f in frames], facts
