"""src/export.py: the ONNX round trip (export, check, run with onnxruntime through the test-time strategy)."""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from p3m.deploy import onnx_export
from p3m.inference.onnx_session import OnnxP3MNet
from p3m.models import P3MNet, load_model
from p3m.models.components.p3mnet import P3MOutput, fuse_global_local
from p3m.models.test_time import infer_alpha
from p3m.tasks.eval import run_evaluation
from p3m.tasks.export import run_export
from p3m.tasks.predict import run_prediction
from p3m.utils.errors import UserError
from tests.inference.conftest import eval_data_overrides

pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript (a core dependency: pip install -e .)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init ResNet-34 P3M-Net saved as one of our checkpoints."""
    torch.manual_seed(0)
    net = P3MNet("resnet34")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


@pytest.fixture(scope="module")
def official_checkpoint(
    official_weights: Callable[..., dict[str, torch.Tensor]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The r34 stand-in weights in the authors' format: the export check once failed on these."""
    path = tmp_path_factory.mktemp("official") / "p3mnet_official_format.pth"
    torch.save({"state_dict": official_weights("r34")}, path)
    return path


@pytest.mark.slow
@pytest.mark.no_cover  # coverage's line tracer slows torch.export's Python tracing by half (performance.md)
def test_onnx_round_trip(
    official_checkpoint: Path,
    compose_config: Callable[..., DictConfig],
    tiny_synthetic: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    checkpoint = official_checkpoint
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
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        result = run_export(cfg)
    assert output.is_file() and result["checked"] and result["check"].passed
    # quiet: none of the exporter's per-node lines, no warning (with their sources, were there any)
    exporter = [r.getMessage() for r in caplog.records if not r.name.startswith("p3m")]
    assert exporter == [] and [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [f"{w.filename}:{w.lineno}: {w.message}" for w in warned] == []
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

    # src/eval.py runtime=onnx scores through the same trainer.test path as the checkpoint
    data = [*eval_data_overrides(tiny_synthetic), "test_strategy=resize", "resize_mode=fast", "metrics=[sad]"]
    docs = {}
    for runtime, weights in (("onnx", f"onnx_path={output}"), ("torch", f"ckpt_path={checkpoint}")):
        docs[runtime] = run_evaluation(compose_config("eval", [*data, weights, f"runtime={runtime}"]))
        shutil.rmtree(tmp_path / "run")
    assert docs["onnx"]["meta"]["backbone"] == "onnx"
    for split in ("P3M-500-P", "P3M-500-NP"):
        assert docs["onnx"][split]["mean"]["sad"] == pytest.approx(
            docs["torch"][split]["mean"]["sad"], rel=1e-2
        )


def test_onnx_runtime_needs_a_graph_and_refuses_torch_only_settings(
    compose_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((64, 64, 3), np.uint8))
    out = tmp_path / "out"
    cfg = compose_config("predict", ["runtime=onnx", f"input={tmp_path}", f"output={out}"])
    with pytest.raises(ValueError, match="onnx_path"):
        run_prediction(cfg)
    cfg = compose_config(
        "predict",
        ["runtime=onnx", "onnx_path=x.onnx", "precision=bf16", f"input={tmp_path}", f"output={out}"],
    )
    with pytest.raises(ValueError, match="runtime=torch"):
        run_prediction(cfg)


def test_missing_onnx_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"p3m export"):
        OnnxP3MNet(tmp_path / "absent.onnx")


def test_unknown_format_is_refused(checkpoint: Path, compose_config: Callable[..., DictConfig]) -> None:
    with pytest.raises(UserError, match="format=tflite"):
        run_export(compose_config("export", [f"ckpt_path={checkpoint}", "format=tflite"]))


def _outputs(logits: torch.Tensor, local: torch.Tensor) -> P3MOutput:
    return P3MOutput(logits, local, fuse_global_local(logits, local), logits, logits, logits)


class _NearTieNet:
    """A network whose transition and foreground logits nearly tie on 5 % of the pixels."""

    def __call__(self, image: torch.Tensor) -> P3MOutput:
        n, _, h, w = image.shape
        gen = torch.Generator().manual_seed(h * w)
        logits = torch.randn(n, 3, h, w, generator=gen)
        tie = torch.rand(n, 1, h, w, generator=gen) < 0.05
        logits[:, 1:2] = torch.where(tie, logits[:, 2:3] + 1e-5, logits[:, 1:2])  # transition wins by 1e-5
        return _outputs(logits, torch.rand(n, 1, h, w, generator=gen))


class _GraphOfNearTieNet:
    """Its exported graph: logits off by float32 rounding (2e-5), which flips the near-tie pixels."""

    def __init__(self, corrupt: bool) -> None:
        self.corrupt = corrupt

    def __call__(self, image: torch.Tensor) -> P3MOutput:
        out = _NearTieNet()(image)
        logits = out.global_logits.clone()
        logits[:, 2] += 2e-5
        fusion = fuse_global_local(logits, out.local_alpha)
        if self.corrupt:  # a real bug: the fused matte wrong where the class is not in doubt
            fusion = torch.where(out.global_logits.argmax(1, keepdim=True) == 0, 0.5, fusion)
        return out._replace(
            global_logits=logits, fusion_alpha=fusion, side2=logits, side1=logits, side0=logits
        )


@pytest.mark.parametrize("corrupt", [False, True])
def test_check_compares_the_fused_matte_only_where_the_class_is_decided(
    monkeypatch: pytest.MonkeyPatch, corrupt: bool
) -> None:
    """Near-tie pixels may take either class in either runtime; elsewhere the fused mattes must agree."""
    monkeypatch.setattr(onnx_export, "OnnxP3MNet", lambda path: _GraphOfNearTieNet(corrupt))
    report = onnx_export.check_onnx(_NearTieNet(), "graph.onnx", sizes=[(64, 64), (96, 128)])
    fusion = [o for o in report.outputs if o.name == "fusion_alpha"]
    assert all(0.96 < o.compared_fraction < 0.99 for o in fusion), fusion  # near-ties where 1 or 2 wins
    assert report.passed is not corrupt, report.summary()
    flipped = _GraphOfNearTieNet(False)(torch.zeros(1, 3, 64, 64)).fusion_alpha
    assert (flipped != _NearTieNet()(torch.zeros(1, 3, 64, 64)).fusion_alpha).float().mean() > 0.01


def test_a_graph_that_fails_its_check_is_not_written(
    checkpoint: Path,
    compose_config: Callable[..., DictConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def export(net: torch.nn.Module, path: Path, *args: object, **kwargs: object) -> Path:
        Path(path).write_bytes(b"a graph")
        return Path(path)

    def failing_check(net: torch.nn.Module, path: Path, *args: object, **kwargs: object):
        assert Path(path).read_bytes() == b"a graph"  # the check reads what was exported
        return onnx_export.CheckReport(
            1e-3, 1e-3, [onnx_export.OutputCheck("local_alpha", (64, 64), 0.5, 0.2)]
        )

    monkeypatch.setattr(onnx_export, "export_onnx", export)
    monkeypatch.setattr(onnx_export, "check_onnx", failing_check)
    output = tmp_path / "p3mnet.onnx"
    for earlier in (None, b"an earlier, good export"):
        if earlier is not None:
            output.write_bytes(earlier)
        with pytest.raises(RuntimeError, match=r"disagrees with PyTorch, .*p3mnet\.onnx not written"):
            run_export(compose_config("export", [f"ckpt_path={checkpoint}", f"output={output}"]))
        assert [p.name for p in tmp_path.iterdir()] == ([] if earlier is None else ["p3mnet.onnx"])
        if earlier is not None:
            assert output.read_bytes() == earlier
    with pytest.raises(UserError, match="would replace 1 of the input files"):
        run_export(compose_config("export", [f"ckpt_path={checkpoint}", f"output={checkpoint}"]))
