"""Write the authors' released P3M-Net file as one of our checkpoints.

    p3m convert input=p3mnet_pretrained_on_p3m10k.pth output=pretrained/p3mnet_r34.ckpt [arch=r34]

An existing output is replaced only with ``overwrite=true``; the input itself never is.

The result holds ``{'state_dict': {'net.<P3MNet key>': tensor}}`` (as a Lightning checkpoint of
``P3MLitModule``) plus where it came from, loads with ``torch.load(weights_only=True)``, and works
wherever a checkpoint is taken: ``ckpt_path=`` of eval and predict, ``model.init_from=`` of training,
``p3m.models.load_model``. Every official key is converted except the unused ImageNet classifier,
which is listed. Exit status: 0 done, 2 user error (the message names the file), 130 Ctrl-C.

In a clone, ``python src/convert.py ...`` is the same command.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from p3m.models.checkpoints import LIGHTNING_PREFIX, state_tensors
from p3m.models.official_format import convert_official_state_dict, detect_official_arch, official_formats
from p3m.utils.checkpoint_files import CheckpointError, read_checkpoint, save_checkpoint
from p3m.utils.config_checks import ConfigCheck
from p3m.utils.errors import UserError
from p3m.utils.files import check_outputs
from p3m.utils.hydra_app import hydra_app
from p3m.utils.run import task_wrapper

log = logging.getLogger(__name__)
CONVERT_CHECK = ConfigCheck(types={"arch": (str, type(None)), "overwrite": bool}, known_keys_only=True)


def convert_official_checkpoint(
    source: str | Path, target: str | Path, arch: str | None = None, overwrite: bool = False
) -> dict[str, Any]:
    """Convert an official checkpoint file and save it as ours.

    Args:
        source: The authors' file: ``{'state_dict': ...}`` or a bare state dict, keys with or without
            ``module.``.
        target: Where to write our checkpoint (parent folders are created).
        arch: ``r34``, ``swin``, ``vitae``...; None detects it from the keys.
        overwrite: Replace an existing ``target`` (never ``source`` itself).

    Returns:
        A summary: ``arch``, ``backbone``, ``converted`` (number of tensors written) and ``ignored``
        (official keys that were dropped).

    Raises:
        UserError: ``target`` is ``source``, a folder, or exists and ``overwrite`` is False.
        CheckpointNotFoundError: ``source`` does not exist.
        CheckpointError: The file cannot be read safely or is not an official P3M-Net checkpoint (the
            error names the expected keys); the write failed.
    """
    source, target = Path(source), Path(target)
    _check_target(source, target, overwrite)
    state = state_tensors(read_checkpoint(source), source)
    if any(k.startswith(LIGHTNING_PREFIX) for k in state):
        raise CheckpointError(
            f"{source} is already one of our checkpoints (keys start with {LIGHTNING_PREFIX!r})"
        )
    arch = arch or detect_official_arch(state)
    converted = convert_official_state_dict(state, arch)  # raises naming the expected keys
    assert arch is not None  # else convert_official_state_dict raised, naming the expected keys
    fmt = official_formats()[arch]
    ignored = sorted(k for k in state if any(re.fullmatch(p, k) for p in fmt.encoder.official_unused))
    save_checkpoint(
        {
            "state_dict": {f"{LIGHTNING_PREFIX}{k}": v.contiguous() for k, v in converted.items()},
            "converted_from": {"file": str(source), "official_arch": arch, "backbone": fmt.backbone},
        },
        target,
    )
    summary = {"arch": arch, "backbone": fmt.backbone, "converted": len(converted), "ignored": ignored}
    log.info(
        "wrote %s: %d tensors of an official %s P3M-Net (backbone %s); ignored %d unused keys %s",
        target,
        len(converted),
        arch,
        fmt.backbone,
        len(ignored),
        ignored,
    )
    return summary


def _check_target(source: Path, target: Path, overwrite: bool) -> None:
    """Refuse, before reading anything, a target that is the source, a folder or (unless asked) a file."""
    if target.is_dir():
        raise UserError(
            f"output={target} is a folder; name the checkpoint file, e.g. output={target}/p3mnet.ckpt"
        )
    check_outputs([target], [source], overwrite=overwrite)


def run_conversion(cfg: DictConfig) -> dict[str, Any]:
    """The convert config's task: ``cfg.input`` -> ``cfg.output``."""
    if not cfg.get("input") or not cfg.get("output"):
        raise UserError("set input=<the authors' .pth> and output=<our .ckpt>: p3m convert input=A output=B")
    return convert_official_checkpoint(
        str(cfg.input), str(cfg.output), cfg.get("arch"), overwrite=bool(cfg.get("overwrite", False))
    )


def _job(cfg: DictConfig) -> None:
    """The Hydra job."""
    task_wrapper(run_conversion, check=CONVERT_CHECK)(cfg)


main = hydra_app("convert", _job)

if __name__ == "__main__":
    main()
