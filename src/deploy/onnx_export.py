"""Export P3M-Net to ONNX and check the exported graph against PyTorch.

The dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``, needs ``onnxscript``) handles
``max_unpool2d``; batch, height and width stay dynamic (height and width as multiples of 32, the
network's contract), so one file serves every test-time pass size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from src.deploy.onnx_session import OnnxP3MNet
from src.models.components.p3mnet import P3MOutput

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES: tuple[str, ...] = P3MOutput._fields
DEFAULT_OPSET = 18


def export_onnx(
    net: nn.Module,
    path: str | Path,
    sample_size: tuple[int, int] = (512, 512),
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write ``net`` (fp32, contiguous, eval mode) as an ONNX graph.

    Args:
        net: A P3M-Net; it is exported as it is (call ``.float().eval()`` first).
        path: The ``.onnx`` file to write (its folder is created).
        sample_size: (H, W) of the example input used for tracing; multiples of 32.
        dynamic: Keep batch, height and width dynamic; False fixes them to ``sample_size`` and batch 1.
        opset: ONNX opset version.
    """
    height, width = sample_size
    if height % 32 or width % 32:
        raise ValueError(f"export sample_size must be multiples of 32, got {sample_size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, 3, height, width)
    dynamic_shapes = None
    if dynamic:
        # H = 32 * h keeps the exporter's shape reasoning exact through the five stride-2 pools
        rows, cols = torch.export.Dim("rows32", min=1, max=256), torch.export.Dim("cols32", min=1, max=256)
        dynamic_shapes = {"image": {0: torch.export.Dim("batch", min=1, max=256), 2: 32 * rows, 3: 32 * cols}}
    with torch.no_grad():
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            external_data=False,  # one self-contained file (P3M-Net r34 is ~ 100 MB, under protobuf's 2 GB)
            verbose=False,
        )
    program.save(str(path))
    log.info("exported ONNX graph to %s (opset %d, dynamic=%s)", path, opset, dynamic)
    return path


@dataclass
class OutputCheck:
    """How one output of the ONNX graph compares with PyTorch on one input."""

    name: str
    size: tuple[int, int]
    max_abs: float
    mismatch_fraction: float
    """Fraction of elements differing by more than the tolerance."""


@dataclass
class CheckReport:
    """Result of :func:`check_onnx`."""

    atol: float
    max_mismatch: float
    outputs: list[OutputCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every output's mismatch fraction is within ``max_mismatch``."""
        return all(o.mismatch_fraction <= self.max_mismatch for o in self.outputs)

    def summary(self) -> str:
        """One line per output: worst max difference and mismatch fraction over the inputs."""
        lines = [f"ONNX vs PyTorch (atol {self.atol:g}, at most {self.max_mismatch:.2%} elements beyond it):"]
        for name in OUTPUT_NAMES:
            rows = [o for o in self.outputs if o.name == name]
            if rows:
                worst = max(o.max_abs for o in rows)
                frac = max(o.mismatch_fraction for o in rows)
                lines.append(f"  {name:14s} max |diff| {worst:.2e}  beyond atol {frac:.4%}")
        return "\n".join(lines)


def check_onnx(
    net: nn.Module,
    onnx_path: str | Path,
    sizes: Sequence[tuple[int, int]] = ((512, 512), (320, 448)),
    atol: float = 1e-3,
    max_mismatch: float = 1e-3,
    seed: int = 0,
) -> CheckReport:
    """Compare the ONNX graph with ``net`` on random ImageNet-normalised inputs of several sizes.

    The tolerance is two-part because a max-pool near-tie can flip one index (the exporter and
    PyTorch may compare in another order), which moves a few unpooled values and, through the
    argmax fusion, a few fused pixels by a lot; everything else agrees to float32 rounding
    (about 1e-5). So: at most ``max_mismatch`` of the elements of each output may differ by more
    than ``atol``.

    Args:
        net: The PyTorch network the graph was exported from (eval mode).
        onnx_path: The exported graph.
        sizes: (H, W) inputs to test, multiples of 32.
        atol: Absolute tolerance per element (outputs are logits and alphas of order 1).
        max_mismatch: Largest allowed fraction of elements beyond ``atol``.
        seed: Seed of the random inputs.
    """
    session = OnnxP3MNet(onnx_path)
    report = CheckReport(atol=atol, max_mismatch=max_mismatch)
    gen = torch.Generator().manual_seed(seed)
    for height, width in sizes:
        image = torch.randn(1, 3, height, width, generator=gen)
        with torch.no_grad():
            expected = net(image)
        got = session(image)
        for name, ours, theirs in zip(OUTPUT_NAMES, got, expected, strict=True):
            diff = np.abs(ours.numpy() - theirs.float().numpy())
            report.outputs.append(
                OutputCheck(name, (height, width), float(diff.max()), float((diff > atol).mean()))
            )
    return report
