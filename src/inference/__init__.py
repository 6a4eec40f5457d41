"""Running a trained network over files: evaluation (``src/eval.py``) and prediction (``src/predict.py``).

The test-time strategies themselves are model maths: :mod:`src.models.test_time`.
"""
