"""P3M: privacy-preserving portrait matting with PyTorch Lightning and Hydra."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# conf/paths reads it, so entry points, DDP children and tests agree on where logs and data go.
os.environ.setdefault("PROJECT_ROOT", str(PROJECT_ROOT))
