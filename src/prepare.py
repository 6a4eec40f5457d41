"""Estimate fg/bg for a P3M-10k-layout training set: `python src/prepare.py data.root=/path/to/P3M-10k`.

P3M-10k ships no foregrounds or backgrounds, and the composition loss needs them; this writes them once
(see `src.data.fgbg`). `fg_bg_format=npy` writes uncompressed arrays that train faster (several times
the disk) and converts fg/bg image files that already exist instead of estimating them again.
`pack=true` then also writes the packed training format (`src.data.packed`): the training image,
alpha and face mask (and fg/bg unless they are `.npy` already) as uint8 arrays in `train/packed/`,
which the training dataset memory-maps: no decoding, and a crop reads only its own pixels.

Exit status: 0 all done, 1 some images failed (listed in the log; the rest were written, and a
re-run retries only what is missing), 2 bad configuration.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import src  # noqa: F401  (sets PROJECT_ROOT for conf/paths)
from src.data.fgbg import prepare_fg_bg
from src.data.packed import pack_training_set

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> int:
    """Run `prepare_fg_bg` as configured and return the exit status (see the module docstring)."""
    root = cfg.data.root
    if root is None:
        log.error(
            "No dataset root: pass data.root=/path/to/P3M-10k (the folder holding train/blurred_image "
            "and train/mask) or set P3M10K_ROOT."
        )
        return 2
    if not Path(str(root)).expanduser().is_dir():
        log.error("data.root=%s does not exist: pass data.root=/path/to/P3M-10k (holding train/)", root)
        return 2
    try:
        summary = prepare_fg_bg(
            root=str(root),
            output_root=None if cfg.output_root is None else str(cfg.output_root),
            workers=cfg.workers,
            overwrite=bool(cfg.overwrite),
            image_dir=str(cfg.image_dir),
            progress=bool(cfg.progress),
            fg_bg_format=str(cfg.get("fg_bg_format", "png")),
        )
        if cfg.get("pack", False):
            packed = pack_training_set(
                root=str(root),
                output_root=None if cfg.output_root is None else str(cfg.output_root),
                workers=cfg.workers,
                overwrite=bool(cfg.overwrite),
                image_dir=str(cfg.image_dir),
                progress=bool(cfg.progress),
            )
            summary.failed.update({stem: f"pack: {why}" for stem, why in packed.failed.items()})
    except (FileNotFoundError, ImportError, ValueError) as err:
        log.error("%s", err)
        return 2
    if summary.failed:
        log.error(
            "%d image(s) failed (listed above); fix or remove them and re-run: finished stems are skipped.",
            len(summary.failed),
        )
        return 1
    return 0


@hydra.main(config_path="../conf", config_name="prepare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; exits with `run`'s status."""
    status = run(cfg)
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
