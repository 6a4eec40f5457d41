"""Browser demo: upload a portrait, get its matte and a cut-out (Gradio; ``pip install -e '.[app]'``).

    p3m app ckpt_path=PATH                       # http://127.0.0.1:7860, this machine only
    p3m app ckpt_path=PATH test_strategy=resize device=cuda server_port=8000

Every key is in conf/app.yaml. The page is built in :mod:`p3m.deploy.gradio_app`; what it computes
is in :mod:`p3m.deploy.cutout`.

In a clone, ``python src/app.py ...`` is the same command.
"""

from __future__ import annotations

from omegaconf import DictConfig

from p3m.deploy.gradio_app import create_app, launch
from p3m.utils.hydra_app import hydra_app


def _job(cfg: DictConfig) -> None:
    """The Hydra job: load the checkpoint and serve the page until interrupted."""
    launch(create_app(cfg), cfg)


main = hydra_app("app", _job)

if __name__ == "__main__":
    main()
