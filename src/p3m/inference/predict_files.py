"""Turn photos into alpha mattes and RGBA cut-outs, file by file (``p3m predict`` runs it; a video
goes to :mod:`p3m.inference.predict_video`)."""

from __future__ import annotations

import glob
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn
from tqdm import tqdm

from p3m.data.io import ImageReadError, ImageSizeError
from p3m.inference.matting import MattingSettings, matte_photo, write_matte_outputs
from p3m.utils.conventions import IMAGE_SUFFIXES
from p3m.utils.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class PredictionSummary:
    """What a prediction run wrote and what it skipped."""

    written: list[Path] = field(default_factory=list)
    """Inputs (images, or the video) whose matte and cut-out were written."""
    failed: list[tuple[Path, str]] = field(default_factory=list)
    """(input, reason) of every input that was skipped."""
    what: str = "images"
    """What the inputs are in the log, plural (``images`` or ``videos``)."""


def collect_inputs(spec: str | Path) -> list[Path]:
    """A file, every image of a folder (sorted, non-recursive), or a glob pattern (sorted matches)."""
    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
    matches = sorted(Path(p) for p in glob.glob(str(spec)) if Path(p).is_file())
    if not matches:
        raise UserError(
            f"input={spec} is no file, folder or glob pattern with matches (quote paths with spaces, "
            "commas or brackets for Hydra: input=\"'my photos/a,b.jpg'\")"
        )
    return matches


def output_paths(paths: Sequence[Path], out_dir: Path) -> list[Path]:
    """Every file :func:`predict_files` writes for `paths` (a repeated stem is skipped, not written)."""
    stems = dict.fromkeys(path.stem for path in paths)
    return [out_dir / sub / f"{stem}.png" for stem in stems for sub in ("alpha", "rgba")]


def predict_files(
    net: nn.Module, paths: Sequence[Path], out_dir: Path, settings: MattingSettings
) -> PredictionSummary:
    """Predict every image; unreadable ones, repeated names and failed writes are reported and skipped.

    Args:
        net: The network in eval mode, on ``settings.device``.
        paths: Input images; outputs are named after their stems.
        out_dir: Receives ``alpha/<stem>.png`` and ``rgba/<stem>.png``.
        settings: The test-time settings (strategy, resize mode, ``max_short_side``, device, precision).
    """
    summary = PredictionSummary()
    sources: dict[str, Path] = {}
    for path in tqdm(paths, desc="predict", unit="img"):
        if path.stem in sources:
            summary.failed.append(
                (path, f"its name clashes with {sources[path.stem]}: both would be {path.stem}.png")
            )
            log.warning("skipped %s: %s", path, summary.failed[-1][1])
            continue
        try:
            original, matte = matte_photo(net, path, settings)
        except (ImageReadError, ImageSizeError) as err:
            summary.failed.append((path, str(err)))
            log.warning("skipped %s", err)
            continue
        except ValueError as err:  # e.g. too small for the strategy
            summary.failed.append((path, str(err)))
            log.warning("skipped %s: %s", path, err)
            continue
        sources[path.stem] = path
        try:
            write_matte_outputs(original, matte, out_dir, path.stem)
        except OSError as err:  # a full disk fails every later image too; each is counted
            summary.failed.append((path, str(err)))
            log.warning("failed %s: %s", path, err)
            continue
        finally:
            del original, matte  # a large photo's arrays go before the next one is read
        summary.written.append(path)
    return summary
