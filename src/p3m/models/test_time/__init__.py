"""The official test-time strategies (RESIZE, HYBRID, a full pass) and the resizing they depend on.

Model maths shared by validation, ``src/eval.py``, ``src/predict.py`` and the ONNX runtime: a network
and an image in, mattes at the image's size out.
"""

from p3m.models.test_time.resize import RESIZE_MODES, ResizeMode, resize_maps
from p3m.models.test_time.strategies import (
    MAX_SIDE,
    STRATEGIES,
    PassMaps,
    TestTimeOutput,
    batched_network_passes,
    infer_alpha,
    matte_rows,
    network_passes,
    pass_size,
)

__all__ = [
    "MAX_SIDE",
    "RESIZE_MODES",
    "STRATEGIES",
    "PassMaps",
    "ResizeMode",
    "TestTimeOutput",
    "batched_network_passes",
    "infer_alpha",
    "matte_rows",
    "network_passes",
    "pass_size",
    "resize_maps",
]
