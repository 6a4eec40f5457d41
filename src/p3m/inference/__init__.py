"""Running a trained network over files: evaluation (``src/eval.py``) and prediction (``src/predict.py``).

The test-time strategies themselves are model maths: :mod:`p3m.models.test_time`.
"""
