"""src/export.py: the ONNX round trip (export, check, run with onnxruntime through the test-time strategy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from src.deploy import OnnxP3MNet
from src.export import run_export
from src.inference import infer_alpha
from src.inference.predict_files import run_prediction
from src.models import P3MNet, load_model
from src.utils.errors import UserError

pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (a core dependency: pip install -e .)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init ResNet-34 P3M-Net saved as one of our checkpoints."""
    torch.manual_seed(0)
    net = P3MNet("resnet34")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


@pytest.mark.slow
def test_onnx_round_trip(checkpoint: Path, compose_config: Callable[..., DictConfig], tmp_path: Path) -> None:
    output = tmp_path / "p3mnet.onnx"
    cfg = compose_config(
        "export",
        [
            f"ckpt_path={checkpoint}",
            f"output={output}",
            "sample_size=[64,64]",
            "check_sizes=[[64,64],[96,128]]",  # dynamic height and width, another aspect ratio
        ],
    )
    result = run_export(cfg)
    assert output.is_file() and result["checked"] and result["check"].passed
    continuous = [o for o in result["check"].outputs if o.name in ("global_logits", "local_alpha")]
    assert max(o.max_abs for o in continuous) < 1e-3

    # the session runs the test-time strategy unchanged, at a pass size the export never saw
    net = load_model(checkpoint)
    session = OnnxP3MNet(output, threads=1)
    image = torch.randint(
        0, 256, (3, 160, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    ours = infer_alpha(session, image, "hybrid", "fast")
    reference = infer_alpha(net, image, "hybrid", "fast")
    assert ours.alpha.shape == reference.alpha.shape == (160, 224)
    diff = (ours.alpha - reference.alpha).abs()
    assert diff.mean() < 1e-4 and (diff > 1e-3).float().mean() < 1e-2  # near-ties may flip a few pixels

    # src/predict.py runtime=onnx writes the same mattes as the PyTorch checkpoint
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "portrait.png"), image.permute(1, 2, 0).numpy()[:, :, ::-1])
    common = [f"input={photos}", "test_strategy=hybrid", "resize_mode=fast", "device=cpu"]
    mattes = {}
    for runtime, weights in (("onnx", f"onnx_path={output}"), ("torch", f"ckpt_path={checkpoint}")):
        out = tmp_path / runtime
        summary = run_prediction(
            compose_config("predict", [*common, weights, f"runtime={runtime}", f"output={out}"])
        )
        assert len(summary.written) == 1 and not summary.failed
        mattes[runtime] = cv2.imread(str(out / "alpha" / "portrait.png"), cv2.IMREAD_UNCHANGED).astype(int)
    assert (np.abs(mattes["onnx"] - mattes["torch"]) > 1).mean() < 1e-2


def test_onnx_runtime_needs_a_graph_and_refuses_torch_only_settings(
    compose_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = compose_config("predict", ["runtime=onnx", f"input={tmp_path}", f"output={tmp_path}"])
    with pytest.raises(ValueError, match="onnx_path"):
        run_prediction(cfg)
    cfg = compose_config(
        "predict",
        ["runtime=onnx", "onnx_path=x.onnx", "precision=bf16", f"input={tmp_path}", f"output={tmp_path}"],
    )
    with pytest.raises(ValueError, match="runtime=torch"):
        run_prediction(cfg)


def test_missing_onnx_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"src/export\.py"):
        OnnxP3MNet(tmp_path / "absent.onnx")


def test_unknown_format_is_refused(checkpoint: Path, compose_config: Callable[..., DictConfig]) -> None:
    with pytest.raises(UserError, match="format=tflite"):
        run_export(compose_config("export", [f"ckpt_path={checkpoint}", "format=tflite"]))
