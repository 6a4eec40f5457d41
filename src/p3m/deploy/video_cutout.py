"""What the browser demo computes for one short video, without the browser: a transparent WebM, a
composite over a colour and the matte as a video, written as ``p3m predict`` writes them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import NamedTuple

from p3m.deploy.cutout import parse_colour
from p3m.inference.matting import MattingSettings
from p3m.inference.predict_video import VideoJob, output_paths, predict_video
from p3m.inference.predictor import Predictor
from p3m.inference.stabilizers import StabilizerSettings
from p3m.inference.video_io import probe_video


class VideoDownloads(NamedTuple):
    """The demo's files for one video, in a new temporary folder."""

    transparent: Path
    """``<stem>_rgba.webm``: VP9 with the matte as alpha (browsers show it over the page)."""
    composite: Path
    """``<stem>_composite.mp4``: the frames over the chosen colour (H.264)."""
    alpha: Path
    """``<stem>_alpha.mp4``: the matte as a grey video."""
    frames: int


def matte_video(
    path: str | Path,
    predictor: Predictor,
    strategy: str,
    stabilizer: str = "none",
    background: str = "#00b140",
    max_seconds: float = 30.0,
) -> VideoDownloads:
    """Matte every frame of an uploaded video with ``predictor``'s network and settings.

    Raises:
        ValueError: no video, a video longer than ``max_seconds``, or a bad colour or stabiliser.
        UserError: a file FFmpeg cannot read.
    """
    if not path:
        raise ValueError("upload a video first")
    video = probe_video(Path(path))
    seconds = video.duration or video.frame_count / float(video.fps)
    if seconds > max_seconds:
        raise ValueError(
            f"the video lasts {seconds:.0f} s; this page mattes up to {max_seconds:g} s "
            "(use p3m predict for longer ones)"
        )
    out_dir = Path(tempfile.mkdtemp(prefix="p3m_app_video_"))
    job = VideoJob(
        video, out_dir, ("webm", "mp4"), parse_colour(background), StabilizerSettings(stabilizer=stabilizer)
    )
    settings = MattingSettings(
        strategy, predictor.resize_mode, predictor.max_short_side, predictor.device, predictor.precision
    )
    frames = predict_video(predictor.net, job, settings)
    (transparent,) = output_paths(video.path, out_dir, "webm")
    alpha, composite = output_paths(video.path, out_dir, "mp4")
    return VideoDownloads(transparent, composite, alpha, frames)
