"""Browser demo: upload a portrait, get its matte and a cut-out (Gradio; ``pip install -e '.[app]'``).

    p3m app ckpt_path=PATH                       # http://127.0.0.1:7860, this machine only
    p3m app ckpt_path=PATH test_strategy=resize device=cuda server_port=8000

Every key is in conf/app.yaml. The page is built in :mod:`p3m.deploy.gradio_app`; what it computes
is in :mod:`p3m.deploy.cutout`.

In a clone, ``python src/app.py ...`` is the same command.
"""

from __future__ import annotations

from omegaconf import DictConfig

from p3m.data.io import MIN_IMAGE_SIDE
from p3m.deploy.gradio_app import create_app, launch
from p3m.inference.loading import MATTING_CHOICES, MATTING_TYPES
from p3m.utils.config_checks import ConfigCheck
from p3m.utils.hydra_app import hydra_app
from p3m.utils.run import task_wrapper

APP_CHECK = ConfigCheck(
    types={
        **MATTING_TYPES,
        "max_short_side": int,
        "server_name": str,
        "server_port": (int, type(None)),
    },
    choices={**MATTING_CHOICES, "runtime": ("torch",)},  # the page runs the PyTorch network
    at_least={"max_short_side": MIN_IMAGE_SIDE, "server_port": 1},
    known_keys_only=True,
)


def serve(cfg: DictConfig) -> None:
    """Load the checkpoint and serve the page until interrupted."""
    launch(create_app(cfg), cfg)


def _job(cfg: DictConfig) -> None:
    """The Hydra job: exit 2 with one message for a user error (a missing checkpoint, no Gradio, ...)."""
    task_wrapper(serve, check=APP_CHECK)(cfg)


main = hydra_app("app", _job)

if __name__ == "__main__":
    main()
