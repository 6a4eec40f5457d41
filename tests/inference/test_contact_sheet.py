"""The contact sheet: its panels, and ``p3m eval contact_sheet=N`` writing it beside metrics.json."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from omegaconf import DictConfig

from p3m.inference.contact_sheet import (
    SheetPortrait,
    checkerboard,
    cutout_over_checkerboard,
    draw_contact_sheet,
)
from p3m.tasks.eval import run_evaluation
from tests.conftest import TINY_SYNTHETIC
from tests.inference.conftest import eval_data_overrides


def test_cutout_shows_the_image_where_the_matte_is_one_and_the_board_where_it_is_zero() -> None:
    image = np.full((16, 16, 3), 30, np.uint8)
    matte = np.zeros((16, 16), np.uint8)
    matte[:, :8] = 255
    board = checkerboard(16, 16)
    assert set(np.unique(board)) == {155, 205} and board[0, 0, 0] != board[0, 8, 0]
    cutout = cutout_over_checkerboard(image, matte)
    assert (cutout[:, :8] == 30).all() and (cutout[:, 8:] == board[:, 8:]).all()


def test_sheet_has_a_column_per_portrait() -> None:
    rng = np.random.default_rng(0)
    portrait = SheetPortrait(
        "a",
        rng.integers(0, 255, (64, 48, 3), np.uint8),
        np.zeros((64, 48), np.uint8),
        np.zeros((64, 48), np.uint8),
    )
    figure = draw_contact_sheet([portrait] * 3, "title")
    assert len(figure.axes) == 4 * 3


def test_eval_writes_the_sheet_and_the_mattes_it_shows(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    overrides = [
        f"ckpt_path={tiny_checkpoint}",
        "test_strategy=resize",
        "metrics=[sad,mad]",
        "contact_sheet=1",
    ]
    run_evaluation(compose_config("eval", [*eval_data_overrides(tiny_synthetic), *overrides]))
    run = tmp_path / "run"
    sheet = cv2.imread(str(run / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > TINY_SYNTHETIC["size"][0] * 4
    # save_predictions=false, yet the mattes the sheet shows are there
    assert len(list((run / "predictions").glob("*/*.png"))) == 2 * TINY_SYNTHETIC["num_test"]
