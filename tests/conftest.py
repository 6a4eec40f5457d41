"""Shared fixtures: where ../shared lives, and copies of the sample portraits to write into."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("P3M_SHARED", REPO_ROOT.parent / "shared"))

# Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine OpenMP spin-waits made
# single calls up to hundreds of times slower; subprocess runs of the entry points keep the default.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (override with ``P3M_SHARED``); tests that need it skip cleanly without it."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent: reference fixtures are only in the project's CI checkout")
    return SHARED_DIR


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    """Fixtures computed with the official code (see its README)."""
    return shared_dir / "reference"


@pytest.fixture(scope="session")
def samples_dir(shared_dir: Path) -> Path:
    """The 8 real P3M-10k sample portraits, in the official layout. Read-only: copy before writing."""
    return shared_dir / "data" / "p3m_samples"


@pytest.fixture
def samples_copy(samples_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the sample set in ``tmp_path``; nothing writes into ``../shared``."""
    dst = tmp_path / "p3m_samples"
    shutil.copytree(samples_dir, dst)
    return dst
