"""Face detector registry, face masks from detections, CenterFace decoding and its ONNX shape rewrite."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from p3m.privacy.detectors import (
    DetectorUnavailableError,
    FaceDetection,
    FaceDetector,
    create_detector,
    face_mask_from_detections,
    list_detectors,
    register_detector,
)
from p3m.privacy.detectors.centerface import _fields, _read_varint, _varint, decode, default_model_path, nms


def _centerface_model() -> Path:
    """Skip unless the optional CenterFace packages are installed (`make anonymize-deps`)."""
    pytest.importorskip("onnxruntime")
    try:
        return default_model_path()
    except DetectorUnavailableError as err:
        pytest.skip(str(err))


def test_registry_lists_both_detectors_and_names_them_in_errors() -> None:
    assert {"centerface", "mediapipe"} <= set(list_detectors())
    with pytest.raises(KeyError, match=r"unknown face detector 'retina'.*centerface, mediapipe"):
        create_detector("retina")
    with pytest.raises(ValueError, match="registered twice"):
        register_detector("centerface")(lambda: None)


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is not None, reason="mediapipe is installed")
def test_mediapipe_says_how_to_install_it() -> None:
    with pytest.raises(DetectorUnavailableError, match=r"mediapipe==0\.10\.21.*separate environment"):
        create_detector("mediapipe")


def test_face_mask_ellipse_and_box() -> None:
    det = FaceDetection(box=(20.0, 10.0, 40.0, 50.0), score=0.9)
    box = face_mask_from_detections([det], (64, 64), margin=0.25, shape="box")
    # Enlarged by 5 px left/right and 10 px top/bottom.
    ys, xs = np.nonzero(box)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (0, 59, 15, 44)
    assert set(np.unique(box)) == {0, 255}
    ellipse = face_mask_from_detections([det], (64, 64), margin=0.0)
    assert ellipse[30, 30] == 255 and ellipse[10, 20] == 0 and ellipse[50, 40] == 0  # corners are cut
    assert ellipse[box == 0].max() == 0
    assert not face_mask_from_detections([], (8, 8)).any()
    with pytest.raises(ValueError, match="margin"):
        face_mask_from_detections([det], (64, 64), margin=-0.1)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], np.float32)
    scores = np.array([0.5, 0.9, 0.4, 0.3], np.float32)
    assert nms(boxes, scores, 0.3) == [1, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.3) == []


def test_decode_reads_centre_size_and_landmarks() -> None:
    """One heatmap peak at cell (row 2, col 3) of a 32 x 48 input, built by hand."""
    heat = np.zeros((1, 1, 8, 12), np.float32)
    heat[0, 0, 2, 3] = 0.8
    size = np.zeros((1, 2, 8, 12), np.float32)
    size[0, :, 2, 3] = np.log([2.0, 3.0])  # height 8 px, width 12 px
    offset = np.zeros((1, 2, 8, 12), np.float32)
    offset[0, :, 2, 3] = [0.25, 0.5]  # centre y = (2 + 0.25 + 0.5) * 4 = 11, x = (3 + 0.5 + 0.5) * 4 = 16
    marks = np.zeros((1, 10, 8, 12), np.float32)
    marks[0, 0, 2, 3], marks[0, 1, 2, 3] = 0.5, 0.25  # first landmark: y = 7 + 0.5 * 8, x = 10 + 0.25 * 12
    boxes, scores, points = decode(heat, size, offset, marks, 0.5, (32, 48))
    np.testing.assert_allclose(boxes, [[10, 7, 22, 15]], atol=1e-5)
    np.testing.assert_allclose(scores, [0.8])
    np.testing.assert_allclose(points[0, 0], [13, 11], atol=1e-5)
    assert decode(heat, size, offset, marks, 0.9, (32, 48))[0].shape == (0, 4)


def test_varint_round_trip() -> None:
    for value in (0, 1, 127, 128, 300, 2**35 + 7):
        encoded = _varint(value)
        assert _read_varint(encoded, 0) == (value, len(encoded))


def test_centerface_model_gets_free_input_shapes() -> None:
    model_path = _centerface_model()
    from p3m.privacy.detectors.centerface import INPUT_NAME, OUTPUT_NAMES, dynamic_shape_model

    raw = model_path.read_bytes()
    rewritten = dynamic_shape_model(raw, (INPUT_NAME, *OUTPUT_NAMES))
    graph = lambda model: next(p for n, _, _, p in _fields(model) if n == 7)  # noqa: E731
    inputs = lambda model: [n for n, *_ in _fields(graph(model))].count(11)  # noqa: E731
    assert inputs(raw) > 1 and inputs(rewritten) == 1  # weights are no longer listed as inputs
    detector = create_detector("centerface", input_long_side=None)
    for shape in ((40, 72), (97, 33)):  # any size runs (the file declares 32 x 32)
        assert detector.detect(np.zeros((*shape, 3), np.uint8)) == []


def test_centerface_backends_agree_on_a_real_face(samples_dir: Path) -> None:
    _centerface_model()
    image = cv2.imread(str(samples_dir / "validation/P3M-500-NP/original_image/p_07141906.jpg"))
    rgb = np.ascontiguousarray(image[:, :, ::-1])
    kwargs = {"threshold": 0.4, "input_long_side": 320}
    ort_faces = create_detector("centerface", **kwargs).detect(rgb)
    cv_faces = create_detector("centerface", backend="opencv", **kwargs).detect(rgb)
    assert isinstance(create_detector("centerface", **kwargs), FaceDetector)
    assert len(ort_faces) == len(cv_faces) == 1
    assert abs(ort_faces[0].score - cv_faces[0].score) < 1e-3
    np.testing.assert_allclose(ort_faces[0].box, cv_faces[0].box, atol=0.5)
    x1, y1, x2, y2 = ort_faces[0].box
    assert 700 < x1 < x2 < 950 and 250 < y1 < y2 < 520  # the face of the man in the cap
    assert ort_faces[0].landmarks.shape == (5, 2)


def test_centerface_rejects_bad_input() -> None:
    _centerface_model()
    detector = create_detector("centerface")
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB"):
        detector.detect(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="threshold"):
        create_detector("centerface", threshold=2.0)
    with pytest.raises(ValueError, match="backend"):
        create_detector("centerface", backend="tensorrt")
