"""Every command of the README's and the docs' day-one sections composes with the real configs.

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

# (file, "## section") -> how many commands it holds
SECTIONS = {
    ("README.md", "Predict a photo or a video"): 5,
    ("README.md", "The papers' numbers"): 4,
    ("README.md", "Training"): 5,
    ("docs/evaluation.md", "The path to a published number"): 6,
    ("docs/evaluation.md", "Reproducing the papers' numbers"): 4,
    ("docs/evaluation.md", "Extra test sets"): 2,
    ("docs/prediction.md", "The browser demo"): 2,
}
# docs/custom-data.md: tests/docs/test_custom_data_commands.py
SCRIPTS = {"train", "eval", "predict", "prepare", "anonymize", "app", "export"}


def section(path: str, title: str) -> str:
    """The text of one ``## title`` section of a Markdown file."""
    text = (REPO_ROOT / path).read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match is not None, f"{path} has no section '## {title}'"
    return match[1]


def readme_section(title: str) -> str:
    """The text of one ``## title`` section of the README."""
    return section("README.md", title)


def commands(path: str, title: str) -> list[str]:
    """The ``python src/<task>.py ...`` and ``p3m <task> ...`` lines of a section's bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", section(path, title), flags=re.S)
    lines = [line.strip().split("  # ")[0] for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith(("python src/", "p3m "))]


COMMANDS = [(f"{path}: {title}", command) for path, title in SECTIONS for command in commands(path, title)]


def test_the_sections_have_their_commands() -> None:
    assert {key: len(commands(*key)) for key in SECTIONS} == SECTIONS


@pytest.mark.parametrize(("section_name", "command"), COMMANDS, ids=[c[:70] for _, c in COMMANDS])
def test_docs_command_composes(
    section_name: str, command: str, compose_config: Callable[..., DictConfig]
) -> None:
    words = shlex.split(command)
    if words[0] == "p3m":  # `p3m <task>` is the app of `python src/<task>.py`
        words = ["python", f"src/{words[1]}.py", *words[2:]]
    script = re.fullmatch(r"src/(\w+)\.py", words[1])
    assert script is not None and script[1] in SCRIPTS and (REPO_ROOT / words[1]).is_file(), words[1]
    overrides = words[2:]
    if overrides and overrides[0] in ("-m", "--multirun"):  # a sweep: compose its first job
        overrides = [re.sub(r"=([^,\[\]{}'\"(]*),.*", r"=\1", o) for o in overrides[1:]]
    cfg = compose_config(script[1], overrides)
    if script[1] == "eval":
        assert cfg.test_strategy == "hybrid" and cfg.resize_mode == "paper" and str(cfg.precision) == "32"
    if "data" in cfg and "eval_splits" in cfg.data:
        # the data module parses the splits (EvalSplit.from_config names a bad key) without touching disk
        datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg=False)
        assert all(isinstance(s, EvalSplit) for s in datamodule.eval_splits)


@pytest.mark.parametrize(
    "where", [("README.md", "The papers' numbers"), ("docs/evaluation.md", "Reproducing the papers' numbers")]
)
def test_paper_commands_use_the_files_the_data_section_names(where: tuple[str, str]) -> None:
    data = readme_section("Data and weights")
    evals = [c for c in commands(*where) if c.startswith("python src/eval.py")]
    assert len(evals) == 3
    for command in evals:
        ckpt = re.search(r"ckpt_path=(\S+)", command)[1]
        assert ckpt.startswith("latest:") or f"`{ckpt}`" in data, ckpt
