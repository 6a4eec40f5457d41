"""Test-time strategies shared by validation, ``src/eval.py`` and ``src/predict.py``."""

from src.inference.test_time import STRATEGIES, TestTimeOutput, infer_alpha

__all__ = ["STRATEGIES", "TestTimeOutput", "infer_alpha"]
