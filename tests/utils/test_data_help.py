"""Errors about a missing dataset or weights file say where to get it (the README's 'Data and weights')."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from p3m.data.fgbg import prepare_fg_bg
from p3m.data.layout import DatasetLayoutError, P3M10kLayout
from p3m.models.components.backbones import create_backbone
from p3m.privacy.faces import PublicFaces
from p3m.utils.docs import WHERE_TO_GET
from tests.conftest import REPO_ROOT

HINT = "README.md, section 'Data and weights'"


def test_the_readme_has_the_section_the_errors_name() -> None:
    assert HINT in WHERE_TO_GET
    assert "\n## Data and weights\n" in (REPO_ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    "fail",
    [
        lambda tmp: P3M10kLayout(None),
        lambda tmp: P3M10kLayout(tmp / "absent"),
        lambda tmp: P3M10kLayout(tmp).train_split(),
        lambda tmp: PublicFaces(tmp),
    ],
    ids=["data.root unset", "P3M-10k absent", "P3M-10k incomplete", "public faces absent"],
)
def test_missing_data_points_to_the_readme(fail: Callable[[Path], object], tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=HINT):
        fail(tmp_path)


def test_prepare_without_p3m10k_points_to_the_readme(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=HINT):
        prepare_fg_bg(tmp_path, workers=1, progress=False)


@pytest.mark.parametrize("name", ["resnet34", "swin", "vitae"])
def test_missing_imagenet_weights_point_to_the_readme(name: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=HINT):
        create_backbone(name, pretrained=tmp_path / "absent.pth")
