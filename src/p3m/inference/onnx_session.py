"""Run an exported P3M-Net with onnxruntime behind the same call as the PyTorch network.

:class:`OnnxP3MNet` takes a torch tensor and returns a :class:`P3MOutput` of torch tensors, so the
test-time strategies (:func:`p3m.models.test_time.infer_alpha`) and prediction run it unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from p3m.models.components.p3mnet import P3MOutput
from p3m.utils.errors import MissingInputError, UserError

_EXPORT_HINT = "export one with `p3m export ckpt_path=CKPT format=onnx output=FILE.onnx`"


class OnnxModelError(UserError, ValueError):
    """A file given as an ONNX graph that onnxruntime cannot load (not ONNX, truncated, another model)."""


class OnnxP3MNet:
    """A P3M-Net ONNX graph in an onnxruntime session, called like the PyTorch module.

    Args:
        path: The ``.onnx`` file (see ``src/export.py``).
        threads: Intra-op threads of onnxruntime (0: its default, all cores).
        providers: onnxruntime execution providers; default: CUDA when onnxruntime has it, then CPU.
    """

    def __init__(self, path: str | Path, threads: int = 0, providers: list[str] | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:  # pragma: no cover - onnxruntime is a core dependency
            raise ImportError("runtime=onnx needs onnxruntime: pip install onnxruntime") from err
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(f"ONNX model {path} not found: {_EXPORT_HINT}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        providers = providers or [
            p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available
        ]
        self.path = path
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except (
            Exception
        ) as err:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) derive from Exception only
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise OnnxModelError(
                f"{path} is not an ONNX model onnxruntime can load ({type(err).__name__}: {reason}); "
                f"{_EXPORT_HINT}"
            ) from None
        self.input_name = self.session.get_inputs()[0].name
        self.training = False  # read by code that checks a module's mode

    def eval(self) -> OnnxP3MNet:
        """No-op (an ONNX graph is always in inference mode); mirrors ``nn.Module.eval``."""
        return self

    def __call__(self, image: Tensor) -> P3MOutput:
        """Predict from an ImageNet-normalised (N, 3, H, W) batch; outputs come back on its device."""
        array = image.detach().float().cpu().contiguous().numpy()
        outputs = self.session.run(None, {self.input_name: np.ascontiguousarray(array)})
        return P3MOutput(*(torch.from_numpy(o).to(image.device) for o in outputs))
