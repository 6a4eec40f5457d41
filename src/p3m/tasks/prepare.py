"""Estimate fg/bg for a P3M-10k-layout training set: `p3m prepare data.root=/path/to/P3M-10k`.

P3M-10k ships no foregrounds or backgrounds, and the composition loss needs them; this writes them once
(see `p3m.data.fgbg`). `fg_bg_format=npy` writes uncompressed arrays that train faster (several times
the disk) and converts fg/bg image files that already exist instead of estimating them again.
`pack=true` then also writes the packed training format (`p3m.data.packed`): the training image,
alpha and face mask (and fg/bg unless they are `.npy` already) as uint8 arrays in `train/packed/`,
which the training dataset memory-maps: no decoding, and a crop reads only its own pixels.

Exit status: 0 all done, 1 some images failed (listed in the log with their count; the rest were
written, and a re-run retries only what is missing), 2 bad configuration, 130 Ctrl-C.

In a clone, ``python src/prepare.py ...`` is the same command.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from p3m.data.fgbg import FG_BG_FORMATS, prepare_fg_bg
from p3m.data.packed import pack_training_set
from p3m.utils.config_checks import ConfigCheck
from p3m.utils.errors import UserError
from p3m.utils.hydra_app import hydra_app
from p3m.utils.run import exit_for_failures, task_wrapper

log = logging.getLogger(__name__)


PREPARE_CHECK = ConfigCheck(
    types={
        "workers": (int, type(None)),
        "overwrite": bool,
        "image_dir": str,
        "progress": bool,
        "fg_bg_format": str,
    },
    choices={"fg_bg_format": FG_BG_FORMATS},
    at_least={"workers": 1},
)


def run(cfg: DictConfig) -> int:
    """Run `prepare_fg_bg` as configured; returns how many images failed.

    Raises:
        UserError: No or a missing dataset root, or a bad setting.
    """
    root = cfg.data.root
    if root is None:
        raise UserError(
            "No dataset root: pass data.root=/path/to/P3M-10k (the folder holding train/blurred_image "
            "and train/mask) or set P3M10K_ROOT."
        )
    if not Path(str(root)).expanduser().is_dir():
        raise UserError(f"data.root={root} does not exist: pass data.root=/path/to/P3M-10k (holding train/)")
    try:
        common = {
            "root": str(root),
            "output_root": None if cfg.output_root is None else str(cfg.output_root),
            "workers": cfg.workers,
            "overwrite": bool(cfg.overwrite),
            "image_dir": str(cfg.image_dir),
            "progress": bool(cfg.progress),
        }
        summary = prepare_fg_bg(**common, fg_bg_format=str(cfg.get("fg_bg_format", "png")))
        if cfg.get("pack", False):
            packed = pack_training_set(**common)
            summary.failed.update({stem: f"pack: {why}" for stem, why in packed.failed.items()})
    except (FileNotFoundError, ImportError, ValueError) as err:
        raise UserError(str(err)) from err
    if summary.failed:
        log.error("fix or remove the failed images and re-run: finished stems are skipped")
    return len(summary.failed)


def _job(cfg: DictConfig) -> None:
    """The Hydra job; exits 1 when some images failed, 2 on a bad configuration."""
    exit_for_failures(task_wrapper(run, check=PREPARE_CHECK)(cfg), "images")


main = hydra_app("prepare", _job)

if __name__ == "__main__":
    main()
