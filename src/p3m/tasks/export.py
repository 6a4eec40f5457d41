"""Export a trained P3M-Net for deployment.

    p3m export ckpt_path=PATH format=onnx [output=p3mnet.onnx] [dynamic=true]
    p3m predict runtime=onnx onnx_path=p3mnet.onnx input=photos/ output=out/

The network is exported in fp32, contiguous, eval mode; after export the ONNX outputs are checked
against PyTorch on a few random inputs (see ``check_*`` in conf/export.yaml and
:func:`p3m.deploy.onnx_export.compare_outputs`) and the run fails, writing nothing, when they are
beyond tolerance. Exit status: 0 done, 1 the check failed (nothing written), 2 user error, 130 Ctrl-C.

In a clone, ``python src/export.py ...`` is the same command.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from p3m.utils.config_checks import ConfigCheck
from p3m.utils.errors import UserError
from p3m.utils.files import atomic_path, check_output_dir, check_outputs, write_errors_named
from p3m.utils.hydra_app import hydra_app
from p3m.utils.run import task_wrapper

log = logging.getLogger(__name__)
FORMATS = ("onnx",)
EXPORT_CHECK = ConfigCheck(
    types={
        "ckpt_path": (str, type(None)),
        "format": str,
        "dynamic": bool,
        "opset": int,
        "check": bool,
        "check_atol": float,
        "check_max_mismatch": float,
    },
    known_keys_only=True,
)


def run_export(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt_path`` in ``cfg.format``; returns the output path and the check's report."""
    # Imported here, not for a cycle: the exporter's imports (torch.onnx, onnxscript) take ~10 s, which
    # a mistyped setting should not wait for.
    from p3m.deploy.onnx_export import check_onnx, export_onnx
    from p3m.inference.loading import backbone_choice
    from p3m.models.checkpoints import load_model
    from p3m.utils.run_dirs import resolve_ckpt_path

    if cfg.format not in FORMATS:
        raise UserError(f"format={cfg.format} is not supported; choose one of {FORMATS}")
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.log_dir, "train", prefer="best")
    if not ckpt_path:
        raise UserError("set ckpt_path=PATH: the checkpoint to export (ours or the authors' file)")
    output = Path(str(cfg.output)) if cfg.get("output") else Path(str(ckpt_path)).with_suffix(".onnx")
    if output.is_dir():
        raise UserError(f"output={output} is a folder; name the file, e.g. output={output / 'p3mnet.onnx'}")
    check_output_dir(output.parent, output=output)  # before the export's minute of work, not at its end
    check_outputs([output], [Path(str(ckpt_path))], overwrite=True)  # never the checkpoint itself
    net = load_model(ckpt_path, backbone=backbone_choice(cfg))
    sample_size = (int(cfg.sample_size[0]), int(cfg.sample_size[1]))
    result: dict[str, Any] = {"output": str(output), "checked": False}
    output.parent.mkdir(parents=True, exist_ok=True)
    # Exported and checked under a temporary name: a graph that fails its check (or an interrupted
    # export) never appears at `output`, and an earlier file there stays as it was.
    with atomic_path(output) as tmp, write_errors_named(output):
        export_onnx(net, tmp, sample_size, dynamic=bool(cfg.dynamic), opset=int(cfg.opset))
        if cfg.check:
            sizes = [tuple(size) for size in cfg.check_sizes] if cfg.dynamic else [sample_size]
            report = check_onnx(net, tmp, sizes, atol=cfg.check_atol, max_mismatch=cfg.check_max_mismatch)
            log.info(report.summary())
            if not report.passed:
                why = report.summary()
                raise RuntimeError(f"the exported graph disagrees with PyTorch, {output} not written:\n{why}")
            result |= {"checked": True, "check": report}
    log.info("wrote %s", output)
    return result


def _job(cfg: DictConfig) -> None:
    """The Hydra job."""
    task_wrapper(run_export, check=EXPORT_CHECK)(cfg)


main = hydra_app("export", _job)

if __name__ == "__main__":
    main()
