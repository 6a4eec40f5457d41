"""Every command of the README's day-one sections composes with the real configs.

They need P3M-10k, the authors' weights or a GPU, so they are parsed and composed, not run: a key that
does not exist, a bad value for a config group or a malformed evaluation split fails here.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

import hydra
import pytest
from omegaconf import DictConfig

from p3m.data.eval_splits import EvalSplit
from tests.conftest import REPO_ROOT

SECTIONS = (
    "Data and weights",
    "Reproducing the papers' numbers",
    "Python, torch.hub and the browser demo",
    "Your own data",
)
SCRIPTS = {"train", "eval", "predict", "prepare", "anonymize", "app"}


def readme_section(title: str) -> str:
    """The text of one ``## title`` section of the README."""
    text = (REPO_ROOT / "README.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, flags=re.S | re.M)
    assert match is not None, f"README has no section '## {title}'"
    return match[1]


def commands(title: str) -> list[str]:
    """The ``python src/<script>.py ...`` lines of a section's bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", readme_section(title), flags=re.S)
    lines = [line.strip().split("  # ")[0] for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("python src/")]


COMMANDS = [(title, command) for title in SECTIONS for command in commands(title)]


def test_the_sections_have_their_commands() -> None:
    counts = {title: len(commands(title)) for title in SECTIONS}
    assert counts == {
        "Data and weights": 2,
        "Reproducing the papers' numbers": 4,
        "Python, torch.hub and the browser demo": 2,
        "Your own data": 5,
    }


@pytest.mark.parametrize(("section", "command"), COMMANDS, ids=[c[:70] for _, c in COMMANDS])
def test_readme_command_composes(
    section: str, command: str, compose_config: Callable[..., DictConfig]
) -> None:
    words = shlex.split(command)
    script = re.fullmatch(r"src/(\w+)\.py", words[1])
    assert script is not None and script[1] in SCRIPTS and (REPO_ROOT / words[1]).is_file(), words[1]
    cfg = compose_config(script[1], words[2:])
    if script[1] == "eval":
        assert cfg.test_strategy == "hybrid" and cfg.resize_mode == "paper" and str(cfg.precision) == "32"
    if "data" in cfg and "eval_splits" in cfg.data:
        # the data module parses the splits (EvalSplit.from_config names a bad key) without touching disk
        datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg=False)
        assert all(isinstance(s, EvalSplit) for s in datamodule.eval_splits)


def test_paper_commands_use_the_files_the_data_section_names() -> None:
    data = readme_section("Data and weights")
    evals = [c for c in commands("Reproducing the papers' numbers") if c.startswith("python src/eval.py")]
    assert len(evals) == 3
    for command in evals:
        ckpt = re.search(r"ckpt_path=(\S+)", command)[1]
        assert ckpt.startswith("latest:") or f"`{ckpt}`" in data, ckpt
