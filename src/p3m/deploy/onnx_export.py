"""Export P3M-Net to ONNX and check the exported graph against PyTorch.

The dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``, needs ``onnxscript``) handles
``max_unpool2d``; batch, height and width stay dynamic (height and width as multiples of 32, the
network's contract), so one file serves every test-time pass size.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from p3m.inference.onnx_session import OnnxP3MNet
from p3m.models.components.p3mnet import P3MOutput

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES: tuple[str, ...] = P3MOutput._fields
DEFAULT_OPSET = 18
# The exporter's graph passes log a line per node they fold, remove or deduplicate (INFO, ~90 lines
# for P3M-Net), and onnx_ir warns that an empty attribute list "defaulted to INTS", which the graph is
# right to do and the user cannot change. Both are dropped during the export; other warnings stay.
EXPORTER_LOGGERS = ("onnx_ir", "onnxscript")
EMPTY_ATTRIBUTE_NOTE = "Attribute type is ambiguous because it is an empty sequence"


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
    with torch.no_grad(), _quiet_exporter():
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
    assert program is not None  # the dynamo exporter returns its program
    program.save(str(path))
    log.info("exported ONNX graph to %s (opset %d, dynamic=%s)", path, opset, dynamic)
    return path


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Within the block, the exporter's loggers keep their warnings only, less the empty-attribute note."""

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(EMPTY_ATTRIBUTE_NOTE)

    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    convenience = logging.getLogger("onnx_ir._convenience")  # filters act on a record's own logger
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    convenience.addFilter(keep)
    try:
        yield
    finally:
        convenience.removeFilter(keep)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@dataclass
class OutputCheck:
    """How one output of the ONNX graph compares with PyTorch on one input."""

    name: str
    size: tuple[int, int]
    max_abs: float
    mismatch_fraction: float
    """Fraction of the compared elements differing by more than the tolerance."""
    compared_fraction: float = 1.0
    """Fraction of the elements compared (``fusion_alpha``: the pixels whose class is decided)."""


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
                line = f"  {name:14s} max |diff| {worst:.2e}  beyond atol {frac:.4%}"
                if name == "fusion_alpha":
                    compared = min(o.compared_fraction for o in rows)
                    line += f"  (on the {compared:.2%} of pixels whose class margin decides the argmax)"
                lines.append(line)
        return "\n".join(lines)


def _fraction_beyond(diff: np.ndarray, atol: float) -> float:
    return float((diff > atol).mean()) if diff.size else 0.0


def compare_outputs(
    expected: P3MOutput, got: P3MOutput, size: tuple[int, int], atol: float
) -> list[OutputCheck]:
    """Compare the graph's outputs with PyTorch's where they are stable.

    Logits and alphas are continuous functions of the input, so they must agree to ``atol`` almost
    everywhere (a max-pool near-tie may flip one index and move a few values; ``max_mismatch`` of
    :func:`check_onnx` absorbs those). The fused matte is not continuous: it takes the argmax class
    of the global logits, so where two classes nearly tie, float32 rounding picks either one and
    the fused value jumps by up to 1 (with random weights most pixels are such near-ties). It is
    therefore compared only where the class is decided. Let d be the largest difference between the
    two runs' logits at a pixel, and m the margin of PyTorch's best class c over the second. The
    graph's logit for c is at least l_c - d and any other class's at most l_j + d <= l_c - m + d,
    so for m > 2 d the graph picks c too. There the fused value is 0, 1 or the local alpha in both
    runs, and must agree to ``atol``; the logits themselves are checked everywhere, so d is small on
    all but ``max_mismatch`` of the pixels and few pixels are left out unless the classes nearly tie.
    """
    checks = []
    for name, ours, theirs in zip(OUTPUT_NAMES, got, expected, strict=True):
        diff = np.abs(ours.float().numpy() - theirs.float().numpy())
        compared = np.ones(diff.shape, dtype=bool)
        if name == "fusion_alpha":
            logits = expected.global_logits.float().numpy()
            per_pixel = np.abs(got.global_logits.float().numpy() - logits).max(axis=1, keepdims=True)
            top2 = np.sort(logits, axis=1)[:, -2:]
            compared = (top2[:, 1:] - top2[:, :1]) > 2 * per_pixel
        checks.append(
            OutputCheck(
                name,
                size,
                float(diff.max()) if diff.size else 0.0,
                _fraction_beyond(diff[compared], atol),
                float(compared.mean()),
            )
        )
    return checks


def check_onnx(
    net: nn.Module,
    onnx_path: str | Path,
    sizes: Sequence[tuple[int, int]] = ((512, 512), (320, 448)),
    atol: float = 1e-3,
    max_mismatch: float = 1e-3,
    seed: int = 0,
) -> CheckReport:
    """Compare the ONNX graph with ``net`` on random ImageNet-normalised inputs of several sizes.

    Every output but the fused matte is compared everywhere; the fused matte where the argmax class
    is decided (:func:`compare_outputs` says why). At most ``max_mismatch`` of the compared
    elements of each output may differ by more than ``atol``.

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
        report.outputs += compare_outputs(expected, session(image), (height, width), atol)
    return report
