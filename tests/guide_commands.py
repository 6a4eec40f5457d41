"""The ``python src/<script>.py ...`` commands of a docs page's bash blocks, in order."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO_ROOT

CUSTOM_DATA_GUIDE = REPO_ROOT / "docs" / "custom-data.md"


def guide_commands(page: Path = CUSTOM_DATA_GUIDE) -> list[str]:
    """Every command line of the page's ```bash blocks that runs a script (comments after '  # ' cut)."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.S)
    lines = [line.strip().split("  # ")[0] for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("python src/")]
