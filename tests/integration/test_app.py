"""The browser demo: what it computes (p3m.deploy.cutout) and the page itself, through gradio_client."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from p3m.deploy.cutout import FaceAnonymizer, composite, make_outputs, parse_colour, save_downloads
from p3m.privacy.detectors import FaceDetection
from p3m.privacy.obfuscate import FaceObfuscator

SAMPLE = Path("validation/P3M-500-NP/original_image/p_07141906.jpg")


def ramp_matte(image: np.ndarray, strategy: str) -> np.ndarray:
    """A stand-in predictor: alpha rises from 0 (left) to 1 (right)."""
    assert strategy == "resize"
    return np.tile(np.linspace(0, 1, image.shape[1], dtype=np.float32), (image.shape[0], 1))


@pytest.mark.parametrize(
    ("text", "rgb"),
    [("#00ff80", (0, 255, 128)), ("#0F8", (0, 255, 136)), ("rgba(12, 34.4, 255, 1)", (12, 34, 255))],
)
def test_parse_colour_reads_what_colour_pickers_send(text: str, rgb: tuple[int, int, int]) -> None:
    assert parse_colour(text) == rgb


@pytest.mark.parametrize("text", ["green", "#12345", "rgb(300, 0, 0)"])
def test_parse_colour_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="#rrggbb"):
        parse_colour(text)


def test_cutout_is_rgba_or_blended_over_the_colour() -> None:
    image = np.full((2, 3, 3), 200, np.uint8)
    matte = np.array([[0, 255, 51], [255, 0, 102]], np.uint8)
    rgba = composite(image, matte, None)
    assert rgba.shape == (2, 3, 4) and np.array_equal(rgba[:, :, 3], matte)
    over = composite(image, matte, (0, 100, 0))
    assert over[0, 0].tolist() == [0, 100, 0] and over[0, 1].tolist() == [200, 200, 200]
    assert over[0, 2].tolist() == [40, 120, 40]  # 0.2 * 200 + 0.8 * (0, 100, 0)


def test_make_outputs_predicts_the_anonymized_image_and_downloads_never_clash() -> None:
    image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)

    class OneFace:
        name = "fixed"

        def detect(self, rgb: np.ndarray) -> list[FaceDetection]:
            return [FaceDetection(box=(20.0, 10.0, 50.0, 40.0), score=0.9)]

    seen: list[np.ndarray] = []

    def remember(rgb: np.ndarray, strategy: str) -> np.ndarray:
        seen.append(rgb)
        return ramp_matte(rgb, strategy)

    anonymizer = FaceAnonymizer(OneFace(), FaceObfuscator(method="zero"), margin=0.0)
    out = make_outputs(image, remember, "resize", background="#000000", anonymizer=anonymizer)
    assert out.faces == 1 and seen[0] is out.image
    assert (out.image[25, 35] == 0).all() and np.array_equal(out.image[:5], image[:5])
    assert out.matte.shape == (64, 80) and out.matte[0, 0] == 0 and out.matte[0, -1] == 255
    assert out.cutout.shape == (64, 80, 3)
    first, second = save_downloads(out), save_downloads(out)
    assert first[0] != second[0] and first[0].parent != second[0].parent
    assert np.array_equal(cv2.imread(str(first[0]), cv2.IMREAD_UNCHANGED), out.matte)
    plain = make_outputs(image, ramp_matte, "resize")
    assert plain.faces is None and plain.cutout.shape == (64, 80, 4)
    with pytest.raises(ValueError, match="upload"):
        make_outputs(None, ramp_matte, "resize")  # type: ignore[arg-type]  # no image, on purpose


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_page_mattes_an_uploaded_portrait(
    compose_config: Callable[..., DictConfig],
    official_weights: Callable[..., dict[str, torch.Tensor]],
    samples_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("gradio")
    from gradio_client import Client, handle_file

    from p3m.deploy.gradio_app import create_app, launch

    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)  # the app must switch analytics off itself
    weights = tmp_path / "p3mnet_pretrained_on_p3m10k.pth"
    torch.save({"state_dict": official_weights("r34", seed=5)}, weights)
    port = _free_port()
    # predicted at a 128 px short side for speed; the matte comes back at the upload's 1080x1080
    cfg = compose_config(
        "app", [f"ckpt_path={weights}", "device=cpu", f"server_port={port}", "max_short_side=128"]
    )
    assert cfg.server_name == "127.0.0.1"
    demo = create_app(cfg)
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    launch(demo, cfg, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "got"))
        matte, cutout, files, used, info = client.predict(
            handle_file(str(samples_dir / SAMPLE)),
            "resize",
            False,
            "colour",
            "#00ff00",
            "cpu",
            api_name="/matte",
        )
    finally:
        demo.close()
    alpha = cv2.imread(matte, cv2.IMREAD_UNCHANGED)
    assert alpha.shape == (1080, 1080)
    assert cv2.imread(cutout, cv2.IMREAD_UNCHANGED).shape == (1080, 1080, 3)
    assert sorted(Path(f).name for f in files) == ["portrait_cutout.png", "portrait_matte.png"]
    assert used is None and "1080x1080, resize, cpu" in info
