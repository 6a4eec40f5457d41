"""Checkpoint files: the one safe reader of every checkpoint and weights file, and the atomic writer.

Every read goes through :func:`read_checkpoint` (our checkpoints, the authors' files, ImageNet
weights, Lightning's resume, ``ckpt_path=latest``): always ``torch.load(weights_only=True)``, and a
file that cannot be used gets a message naming it and saying why (empty, truncated, not a PyTorch
file, or holding pickled objects: refused for safety). Kept free of model imports so that the
backbones can use it too.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from p3m.utils.docs import WHERE_TO_GET
from p3m.utils.errors import UserError
from p3m.utils.files import atomic_path


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used; the message names the file and the cause."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """A checkpoint path that does not exist."""


# How torch's serialisation formats begin: a zip archive (torch >= 1.6) or the legacy pickle's magic number.
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def read_checkpoint(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """Load a checkpoint file safely: every checkpoint read of the project goes through here.

    Always ``torch.load(..., weights_only=True)``: tensors and plain containers only, never code.

    Args:
        path: The file.
        map_location: Where tensors go (``torch.load``'s argument).
        mmap: Map the tensors' storage instead of reading it (zip checkpoints only): a cheap check
            that a file is a complete checkpoint.

    Raises:
        CheckpointNotFoundError: ``path`` is not a file.
        CheckpointError: The file is empty, truncated, not a PyTorch checkpoint, or holds pickled
            objects other than tensors (refused for safety); the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a checkpoint file" if path.is_dir() else f"does not exist ({WHERE_TO_GET})"
        raise CheckpointNotFoundError(f"checkpoint {path}: {what}")
    try:
        with path.open("rb") as f:
            head = f.read(len(_LEGACY_MAGIC) + 2)
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read: {err.strerror or err}") from None
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): a save that never completed?")
    if not (head.startswith(_ZIP_MAGIC) or _LEGACY_MAGIC in head):
        raise CheckpointError(f"checkpoint {path} is not a PyTorch checkpoint (it does not start like one)")
    problem: Exception
    try:
        return torch.load(
            path, map_location=map_location, weights_only=True, mmap=mmap and head.startswith(_ZIP_MAGIC)
        )
    except pickle.UnpicklingError as err:
        # The weights-only unpickler names what it refuses ("GLOBAL os.system", a class): the file
        # holds objects whose loading would run code. torch's own message is not passed on: it
        # suggests loading the file unsafely.
        if "GLOBAL" in str(err):
            raise CheckpointError(
                f"checkpoint {path} holds pickled Python objects besides tensors (loading them could "
                "run code): refused for safety. Checkpoints are read with torch.load(weights_only=True), "
                "which loads tensors and plain containers only; if you made the file, save only its "
                "state_dict."
            ) from None
        problem = err
    except Exception as err:  # damaged bytes fail in the unpickler in many ways
        problem = err
    raise CheckpointError(
        f"checkpoint {path} is truncated or damaged ({path.stat().st_size} bytes, "
        f"{type(problem).__name__}): an interrupted save or copy? Use another checkpoint"
    )


def save_checkpoint(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file in the target folder and an atomic rename.

    A save that fails half-way (a full disk, a killed process) leaves the previous file intact and
    no partial ``.ckpt`` behind (see :func:`p3m.utils.files.atomic_path`).

    Raises:
        CheckpointError: The write failed (the message names the file and the cause).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp, tmp.open("xb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
    except BaseException as err:
        # torch's zip writer reports a failed write as a RuntimeError raised while handling the OSError
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if cause is None:
            raise
        previous = f"; the previous {path.name} is unchanged" if path.exists() else ""
        raise CheckpointError(
            f"could not write checkpoint {path}: {cause.strerror or cause}{previous}. Free disk space "
            "(or write elsewhere) and run again; training resumes with ckpt_path=latest"
        ) from cause
