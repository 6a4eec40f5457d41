"""The browser demo's page (Gradio, the optional ``[app]`` extra): widgets wired to :mod:`p3m.deploy.cutout`.

Gradio is imported here only, so the core install never needs it; analytics are switched off before
the import (no request leaves the machine).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from p3m.deploy.cutout import FaceAnonymizer, make_outputs, save_downloads
from p3m.deploy.video_cutout import matte_video
from p3m.inference.loading import load_network, resolve_device
from p3m.inference.predictor import Predictor
from p3m.inference.stabilizers import STABILIZERS, StabilizerSettings
from p3m.models.test_time import STRATEGIES
from p3m.privacy.detectors import create_detector
from p3m.privacy.obfuscate import FaceObfuscator
from p3m.utils.errors import MissingDependencyError, UserError

log = logging.getLogger(__name__)

API_NAME = "matte"  # gradio_client: client.predict(..., api_name="/matte")
VIDEO_API_NAME = "matte_video"  # client.predict(handle_file(clip), ..., api_name="/matte_video")
BACKGROUNDS = ("transparent", "colour")
IMAGE_HEIGHT = 340  # px on the page; downloads keep the full size


def import_gradio() -> Any:
    """Import Gradio with analytics off, or say how to install it."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError:
        raise MissingDependencyError(
            "the browser demo needs the optional [app] extra (Gradio): pip install -e '.[app]'"
        ) from None
    return gradio


def available_devices() -> list[str]:
    """``cpu`` and every visible CUDA device."""
    return ["cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]


def build_demo(
    predictor: Predictor,
    make_anonymizer: Callable[[], FaceAnonymizer],
    title: str = "P3M-Net: privacy-preserving portrait matting",
    default_stabilizer: str = "none",
    max_video_seconds: float = 30.0,
) -> Any:
    """The Gradio Blocks page: a photo tab (matte, cut-out, downloads) and a video tab (transparent
    WebM, composite, downloads; :mod:`p3m.deploy.video_cutout`).

    Args:
        predictor: Predicts the mattes; its strategy and device are the page's defaults.
        make_anonymizer: Builds the face anonymizer the first time it is asked for (the detector is
            an optional install, see ``make anonymize-deps``).
        title: Page title.
        default_stabilizer: The video tab's stabiliser at first (``video.stabilizer``).
        max_video_seconds: Longer uploads are refused (every frame goes through the network here).
    """
    gr = import_gradio()
    anonymizer = functools.cache(make_anonymizer)

    def process(
        image: np.ndarray | None, strategy: str, anonymize: bool, background: str, colour: str, device: str
    ) -> tuple[Any, ...]:
        if image is None:
            raise gr.Error("Upload a portrait first.")
        if device != str(predictor.device):
            predictor.device = torch.device(device)
            predictor.net.to(predictor.device)
        start = time.perf_counter()
        try:
            outputs = make_outputs(
                image,
                predictor,
                strategy,
                background=colour if background == "colour" else None,
                anonymizer=anonymizer() if anonymize else None,
            )
        except (ValueError, RuntimeError, ImportError) as err:  # detector missing, image too small, ...
            raise gr.Error(str(err)) from err
        seconds = time.perf_counter() - start
        matte_path, cutout_path = save_downloads(outputs)
        height, width = outputs.matte.shape
        info = f"{width}x{height}, {strategy}, {device}: {seconds:.1f} s"
        if outputs.faces is not None:
            info += f"; {outputs.faces} face(s) anonymized before matting"
        shown_input = outputs.image if anonymize else None
        return outputs.matte, outputs.cutout, [str(matte_path), str(cutout_path)], shown_input, info

    def process_video(
        video: str | None, strategy: str, stabilizer: str, colour: str, device: str
    ) -> tuple[Any, ...]:
        if device != str(predictor.device):
            predictor.device = torch.device(device)
            predictor.net.to(predictor.device)
        start = time.perf_counter()
        try:
            out = matte_video(video or "", predictor, strategy, stabilizer, colour, max_video_seconds)
        except (ValueError, UserError, OSError, RuntimeError) as err:  # too long, unreadable, disk full
            raise gr.Error(str(err)) from err
        seconds = time.perf_counter() - start
        info = f"{out.frames} frames, {strategy}, {stabilizer}, {device}: {seconds:.1f} s"
        files = [str(out.transparent), str(out.composite), str(out.alpha)]
        return str(out.transparent), str(out.composite), files, info

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(
            f"## {title}\nUpload a portrait or a short video; get its alpha matte and a cut-out. "
            "Nothing leaves this machine."
        )
        with gr.Tab("Photo"), gr.Row():
            with gr.Column():
                image = gr.Image(
                    label="Portrait",
                    type="numpy",
                    image_mode="RGB",
                    sources=["upload"],
                    height=IMAGE_HEIGHT,
                )
                strategy = gr.Radio(list(STRATEGIES), value=predictor.strategy, label="Test-time strategy")
                device = gr.Dropdown(available_devices(), value=str(predictor.device), label="Device")
                anonymize = gr.Checkbox(False, label="Anonymize faces of the input first (blur)")
                background = gr.Radio(list(BACKGROUNDS), value="transparent", label="Cut-out background")
                colour = gr.ColorPicker("#00b140", label="Background colour")
                run = gr.Button("Matte", variant="primary")
            with gr.Column():
                matte = gr.Image(label="Alpha matte", type="numpy", format="png", height=IMAGE_HEIGHT)
                cutout = gr.Image(
                    label="Cut-out", type="numpy", format="png", image_mode="RGBA", height=IMAGE_HEIGHT
                )
                files = gr.File(label="Downloads (PNG)", file_count="multiple")
                used = gr.Image(label="Anonymized input", type="numpy", format="png", height=IMAGE_HEIGHT)
                info = gr.Textbox(label="Info", interactive=False)
        with gr.Tab("Video"), gr.Row():
            with gr.Column():
                video = gr.Video(label=f"Short video (up to {max_video_seconds:g} s)", sources=["upload"])
                video_strategy = gr.Radio(
                    list(STRATEGIES), value=predictor.strategy, label="Test-time strategy"
                )
                stabilizer = gr.Radio(list(STABILIZERS), value=default_stabilizer, label="Stabilizer")
                video_colour = gr.ColorPicker("#00b140", label="Composite background colour")
                video_device = gr.Dropdown(available_devices(), value=str(predictor.device), label="Device")
                run_video = gr.Button("Matte video", variant="primary")
            with gr.Column():
                transparent = gr.Video(label="Transparent (WebM, VP9 with alpha)", height=IMAGE_HEIGHT)
                composite_video = gr.Video(label="Composite (H.264)", height=IMAGE_HEIGHT)
                video_files = gr.File(label="Downloads", file_count="multiple")
                video_info = gr.Textbox(label="Info", interactive=False)
        run.click(
            process,
            inputs=[image, strategy, anonymize, background, colour, device],
            outputs=[matte, cutout, files, used, info],
            api_name=API_NAME,
        )
        run_video.click(
            process_video,
            inputs=[video, video_strategy, stabilizer, video_colour, video_device],
            outputs=[transparent, composite_video, video_files, video_info],
            api_name=VIDEO_API_NAME,
        )
    return demo


def create_app(cfg: DictConfig) -> Any:
    """The demo page for ``conf/app.yaml``: loads ``cfg.ckpt_path`` and binds the settings.

    Gradio and the device are checked before the checkpoint is loaded; every failure a user can fix
    (no Gradio, a missing or unsafe checkpoint, a device this machine lacks) is a
    :class:`~p3m.utils.errors.UserError`.
    """
    import_gradio()
    device = resolve_device(cfg.device)
    net, meta = load_network(cfg, device)
    log.info("serving the %s P3M-Net of %s on %s", meta["backbone"], meta["checkpoint"], device)
    predictor = Predictor(
        net, cfg.test_strategy, cfg.resize_mode, device, cfg.max_short_side, str(cfg.precision)
    )
    anon = cfg.anonymize

    def make_anonymizer() -> FaceAnonymizer:
        detector = create_detector(anon.detector, threshold=anon.threshold)
        obfuscator = FaceObfuscator(
            method=anon.method, blur_sigma=anon.blur_sigma, mosaic_block=anon.mosaic_block
        )
        return FaceAnonymizer(detector, obfuscator, margin=anon.margin)

    stabilizer = StabilizerSettings.from_config(cfg.get("video")).stabilizer
    return build_demo(
        predictor,
        make_anonymizer,
        default_stabilizer=stabilizer,
        max_video_seconds=float(cfg.get("video_max_seconds", 30)),
    )


def launch(demo: Any, cfg: DictConfig, **kwargs: Any) -> Any:
    """Serve ``demo`` on ``cfg.server_name:cfg.server_port`` (127.0.0.1 by default), never shared."""
    return demo.launch(
        server_name=cfg.server_name, server_port=cfg.server_port, share=False, inbrowser=False, **kwargs
    )
