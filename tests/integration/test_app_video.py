"""The browser demo's video tab, through gradio_client: a short clip in, a transparent WebM and a
composite out; too long a clip is refused."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from p3m.models import P3MNet
from tests.inference.clips import read_clip, write_clip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_page_mattes_an_uploaded_video(
    compose_config: Callable[..., DictConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("gradio")
    from gradio_client import Client, handle_file

    from p3m.deploy.gradio_app import create_app, launch

    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    torch.manual_seed(0)
    weights = tmp_path / "random_r34.ckpt"
    state = P3MNet("resnet34").state_dict()
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, weights)
    rng = np.random.default_rng(0)
    clip = write_clip(tmp_path / "clip.mp4", [rng.integers(0, 256, (96, 64, 3), np.uint8) for _ in range(4)])
    long_clip = write_clip(tmp_path / "long.mp4", [np.zeros((64, 64, 3), np.uint8)] * 40)  # 3.2 s
    port = _free_port()
    overrides = [f"ckpt_path={weights}", "device=cpu", f"server_port={port}", "video_max_seconds=2"]
    demo = create_app(compose_config("app", overrides))
    launch(demo, compose_config("app", overrides), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "got"))
        transparent, composite, files, info = client.predict(
            handle_file(str(clip)), "resize", "ofd", "#00ff00", "cpu", api_name="/matte_video"
        )
        with pytest.raises(Exception, match=r"lasts 3 s; this page mattes up to 2 s"):
            client.predict(
                handle_file(str(long_clip)), "resize", "none", "#00ff00", "cpu", api_name="/matte_video"
            )
    finally:
        demo.close()
    paths = [Path(v["video"] if isinstance(v, dict) else v) for v in (transparent, composite)]
    rgba, _, facts = read_clip(paths[0], alpha=True)
    assert facts["codec"] == "vp9" and len(rgba) == 4 and rgba[0].shape == (96, 64, 4)
    assert 0 < np.mean([f[:, :, 3].mean() for f in rgba]) < 255  # a real matte as the alpha
    composited, _, facts = read_clip(paths[1])
    assert facts["codec"] == "h264" and facts["audio"] == ["aac"] and len(composited) == 4
    assert sorted(Path(f).name for f in files) == ["clip_alpha.mp4", "clip_composite.mp4", "clip_rgba.webm"]
    assert info.startswith("4 frames, resize, ofd, cpu")
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
