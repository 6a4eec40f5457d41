"""Lightning's checkpoint reads and writes, through the project's safe loader and atomic writer.

Lightning's own ``TorchCheckpointIO`` writes to the system's temp folder and moves the file into
place, which across file systems is a copy: a full disk leaves a truncated ``last.ckpt`` that
``ckpt_path=latest`` would then pick. Here a save goes to a temporary file beside the target and is
renamed over it (:func:`~p3m.utils.checkpoint_files.save_checkpoint`), and a resume reads through
:func:`~p3m.utils.checkpoint_files.read_checkpoint`, so a damaged or unsafe file gets a message that
names it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from p3m.utils.checkpoint_files import read_checkpoint, save_checkpoint


class SafeCheckpointIO(TorchCheckpointIO):
    """Local checkpoints written atomically and read with ``weights_only=True`` only."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (see the module docstring)."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_checkpoint(checkpoint, path)

    def load_checkpoint(
        self,
        path: str | Path,
        map_location: Callable | str | None = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Read ``path`` with the project's loader; ``weights_only=False`` is refused, never honoured."""
        if weights_only is False:
            raise ValueError("checkpoints are only read with weights_only=True")
        return read_checkpoint(path, map_location="cpu" if map_location is None else map_location)
