"""Browser demo: upload a portrait, get its matte and a cut-out (Gradio; ``pip install -e '.[app]'``).

    python src/app.py ckpt_path=PATH                       # http://127.0.0.1:7860, this machine only
    python src/app.py ckpt_path=PATH test_strategy=resize device=cuda server_port=8000

Every key is in conf/app.yaml. The page is built in :mod:`src.deploy.gradio_app`; what it computes
is in :mod:`src.deploy.cutout`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import src  # noqa: F401  (sets PROJECT_ROOT for conf/paths)
from src.deploy.gradio_app import create_app, launch


@hydra.main(version_base="1.3", config_path="../conf", config_name="app")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: load the checkpoint and serve the page until interrupted."""
    launch(create_app(cfg), cfg)


if __name__ == "__main__":
    main()
