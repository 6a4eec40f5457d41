"""``contact_sheet.png``: what a network makes of the evaluation portraits, in one picture.

One column per portrait, four rows: the input, the predicted matte, the ground truth and the cut-out
(the input with the predicted matte as alpha) over a checkerboard, each column titled with its split,
name and SAD. ``p3m eval contact_sheet=N`` draws the first N portraits of every split beside
metrics.json, from the mattes it saved; ``make demo`` puts the sheet of its synthetic validation
portraits there. matplotlib is imported only when a sheet is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from p3m.data.io import read_image, read_mask
from p3m.utils.files import write_figure

ROW_TITLES = ("input", "predicted matte", "ground truth", "cut-out")


@dataclass(frozen=True)
class SheetPortrait:
    """One column of the sheet.

    Attributes:
        title: Caption above the column (split, name, score).
        image: (H, W, 3) uint8 RGB input.
        predicted: (H, W) uint8 predicted matte.
        truth: (H, W) uint8 ground-truth matte.
    """

    title: str
    image: np.ndarray
    predicted: np.ndarray
    truth: np.ndarray


def checkerboard(height: int, width: int, square: int = 8) -> np.ndarray:
    """(H, W, 3) uint8 light and dark grey squares: what image editors show behind transparency."""
    rows = (np.arange(height) // square)[:, None]
    cols = (np.arange(width) // square)[None, :]
    board = np.where((rows + cols) % 2 == 0, 205, 155).astype(np.uint8)
    return np.repeat(board[:, :, None], 3, axis=2)


def cutout_over_checkerboard(image: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """The image composited with `matte` as alpha over :func:`checkerboard` (uint8 RGB)."""
    alpha = matte.astype(np.float32)[:, :, None] / 255.0
    board = checkerboard(*matte.shape).astype(np.float32)
    return (image.astype(np.float32) * alpha + board * (1.0 - alpha)).round().astype(np.uint8)


def draw_contact_sheet(portraits: Sequence[SheetPortrait], title: str) -> Any:
    """A matplotlib figure with one column per portrait and the rows of ``ROW_TITLES``."""
    from matplotlib.figure import Figure  # only when drawing: imports in about a second

    if not portraits:
        raise ValueError("a contact sheet needs at least one portrait")
    height, width = portraits[0].truth.shape
    cell = 2.0  # inches per image height
    figure = Figure(
        figsize=(0.6 + len(portraits) * cell * width / height, 0.5 + len(ROW_TITLES) * cell),
        dpi=max(100, round(height / cell)),  # about one figure pixel per image pixel
        layout="constrained",
    )
    figure.suptitle(title)
    axes = figure.subplots(len(ROW_TITLES), len(portraits), squeeze=False)
    for col, portrait in enumerate(portraits):
        panels = (
            portrait.image,
            portrait.predicted,
            portrait.truth,
            cutout_over_checkerboard(portrait.image, portrait.predicted),
        )
        for row, panel in enumerate(panels):
            axis = axes[row][col]
            axis.imshow(panel, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(portrait.title, fontsize=8)
            if col == 0:
                axis.set_ylabel(ROW_TITLES[row])
    return figure


def evaluation_portraits(
    eval_sets: Sequence[Any],
    predictions_dir: Path,
    per_image: Mapping[str, Mapping[str, Mapping[str, float]]],
    per_split: int,
) -> list[SheetPortrait]:
    """The first `per_split` portraits of every evaluation split with their saved mattes and SAD.

    Args:
        eval_sets: The evaluation datasets (``files`` with ``image``, ``alpha`` and ``stem``, and ``split``).
        predictions_dir: Folder of the mattes, ``<split>/<stem>.png`` or ``<stem>.png`` (as ``pred_dir``).
        per_image: ``{split: {stem: {metric: value}}}`` (metrics.json's ``per_image``), for the captions.
        per_split: Portraits taken from each split.
    """
    portraits = []
    for dataset in eval_sets:
        split = dataset.split.name
        for files in dataset.files[:per_split]:
            candidates = [
                predictions_dir / split / f"{files.stem}.png",
                predictions_dir / f"{files.stem}.png",
            ]
            matte = next((p for p in candidates if p.is_file()), candidates[0])
            sad = per_image.get(split, {}).get(files.stem, {}).get("sad")
            caption = f"{split}\n{files.stem}" + (f"\nSAD {sad:.2f}" if sad is not None else "")
            portraits.append(
                SheetPortrait(caption, read_image(files.image), read_mask(matte), read_mask(files.alpha))
            )
    return portraits


def write_contact_sheet(path: Path, portraits: Sequence[SheetPortrait], title: str) -> None:
    """Draw and write the sheet (PNG) through a temporary file."""
    write_figure(path, draw_contact_sheet(portraits, title))
