"""Packaging beyond what pyproject.toml can say: the wheel carries the top-level ``conf/`` as ``p3m/conf``.

``conf/`` stays at the repository's top level for its users (``python src/train.py`` reads it there);
an installed ``p3m`` reads the copy (:func:`p3m.utils.hydra_app.config_dir`). ``conf/local/`` holds a
machine's own settings and never travels.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithConfigs(build_py):
    """``build_py`` plus ``conf/`` -> ``<build>/p3m/conf``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the source tree's conf/ directly
            return
        target = Path(self.build_lib) / "p3m" / "conf"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            Path(__file__).parent / "conf", target, ignore=shutil.ignore_patterns("local", "__pycache__")
        )


setup(cmdclass={"build_py": BuildPyWithConfigs})
