"""Every command of docs/custom-data.md composes with the real configs (the slow tier runs them:
tests/integration/test_custom_data_guide.py)."""

from __future__ import annotations

import shlex
from collections.abc import Callable

import pytest
from omegaconf import DictConfig

from tests.conftest import REPO_ROOT
from tests.guide_commands import guide_commands

COMMANDS = guide_commands()


def test_the_guide_has_its_commands() -> None:
    scripts = [shlex.split(c)[1] for c in COMMANDS]
    assert scripts == ["src/train.py", "src/eval.py", "src/predict.py", "src/train.py"]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[:60] for c in COMMANDS])
def test_guide_command_composes(command: str, compose_config: Callable[..., DictConfig]) -> None:
    words = shlex.split(command)
    assert words[0] == "python" and (REPO_ROOT / words[1]).is_file(), words[1]
    script = words[1].removeprefix("src/").removesuffix(".py")
    cfg = compose_config(script, words[2:])
    if "data" in cfg:
        assert cfg.data._target_ == "p3m.data.folder.FolderDataModule"
        assert cfg.data.images == "photos" and cfg.data.mattes in ("mattes", "masks")
    if script == "train":
        assert cfg.model.init_from == "pretrained/p3mnet_pretrained_on_p3m10k.pth"
