"""Evaluate a checkpoint, or existing predictions, on every evaluation split of the data config.

Examples:
    p3m eval ckpt_path=best.ckpt data.root=/path/to/P3M-10k
    p3m eval ckpt_path=p3mnet_pretrained_on_p3m10k.pth test_strategy=hybrid   # the authors' file
    p3m eval ckpt_path=latest data=synthetic backbone=resnet34 save_predictions=true
    p3m eval pred_dir=outputs/other_method data.root=/path/to/P3M-10k          # no model
    p3m eval ckpt_path=best.ckpt trainer.devices=4     # 4 GPUs (DDP), the 1-GPU numbers
    p3m eval mode=video ckpt_path=best.ckpt [video.stabilizer=ofd]   # clips: MAD ... dtSSD, MESSDdt

Runs through ``trainer.test`` (the evaluator of validation): ``device=cpu|cuda|cuda:1`` sets the
trainer's accelerator/devices; ``trainer.devices=N`` evaluates on N processes, each image once.

Writes metrics.json, per_image.csv (and predictions/<split>/<stem>.png) into the run directory
(rank 0); logs ``test/p/<metric>``, ``test/np/<metric>`` and ``test/np_minus_p/<metric>``.

``mode=video`` scores clips instead (``video.root``, one device, :mod:`p3m.inference.evaluate_video`):
the synthetic video benchmark is written there when missing; metrics.json and per_image.csv hold
each clip's values and their mean, logged as ``test/video/<metric>`` (docs/video.md).
Exit status: 0 done, 2 user error (the message says which setting or file), 130 Ctrl-C.

In a clone, ``python src/eval.py ...`` is the same command.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from p3m.callbacks.progress_log import ProgressLog
from p3m.inference.contact_sheet import evaluation_portraits, write_contact_sheet
from p3m.inference.evaluate import MatteSource, prediction_reader
from p3m.inference.evaluate_video import run_video_evaluation
from p3m.inference.loading import (
    MATTING_CHOICES,
    MATTING_TYPES,
    backbone_choice,
    inference_precision,
    load_network,
    resolve_device,
)
from p3m.inference.report import (
    log_per_image_table,
    print_table,
    results_document,
    software_versions,
    write_reports,
)
from p3m.metrics.evaluation import SplitResult
from p3m.models.evaluation import MatteEvaluationModule
from p3m.models.test_time import ResizeMode, infer_alpha
from p3m.utils.config_checks import ConfigCheck
from p3m.utils.errors import MissingInputError, SettingError
from p3m.utils.hydra_app import hydra_app
from p3m.utils.instantiate import instantiate_loggers
from p3m.utils.run import log_hyperparameters, task_wrapper

log = logging.getLogger(__name__)
MODES = ("image", "video")

EVAL_CHECK = ConfigCheck(
    types={
        **MATTING_TYPES,
        "pred_dir": (str, type(None)),
        "save_predictions": bool,
        "contact_sheet": int,
        "metrics": list,
        "progress_every_n_images": int,
        "mode": str,
        "video.root": str,
        "video.metrics": list,
        "video.stabilizer": str,
    },
    choices=MATTING_CHOICES,
    known_keys_only=True,
)


def trainer_device_settings(cfg: DictConfig) -> dict[str, Any]:
    """``device=`` as the trainer's settings: the one way eval.py places its work.

    ``auto`` leaves ``trainer.accelerator`` / ``trainer.devices`` as configured (several devices:
    ``trainer.devices=4``); ``cpu`` -> ``accelerator=cpu``; ``cuda`` -> ``accelerator=gpu``;
    ``cuda:1`` -> ``accelerator=gpu, devices=[1]``. A contradiction with ``trainer.*`` is refused.
    """
    name = str(cfg.get("device", "auto"))
    if name == "auto":
        return {}
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SettingError(f"device={name!r}: expected auto, cpu, cuda or cuda:N") from None
    accelerator = {"cuda": "gpu"}.get(device.type, device.type)
    configured = str(cfg.trainer.get("accelerator", "auto"))
    if configured not in ("auto", accelerator, device.type):
        raise SettingError(
            f"device={name} but trainer.accelerator={configured}: set one of them (device=auto leaves "
            "the trainer's settings)"
        )
    settings: dict[str, Any] = {"accelerator": accelerator}
    if device.index is not None:
        if cfg.trainer.get("devices", 1) not in (1, "1", "auto"):
            raise SettingError(
                f"device={name} names one device but trainer.devices={cfg.trainer.devices}: use "
                "trainer.devices=[i,j,...] for several"
            )
        settings["devices"] = [device.index]
    return settings


def build_predictor(cfg: DictConfig) -> tuple[MatteSource, nn.Module | None, dict[str, Any]]:
    """What makes the mattes: existing ones (``pred_dir``), or a network with the test-time strategy.

    Returns:
        The predictor (an evaluation batch of one image -> its matte), the torch network it runs
        (for Lightning to place on the device; None otherwise), and the run's metadata.
    """
    if cfg.get("pred_dir"):
        pred_dir = Path(str(cfg.pred_dir))
        if not pred_dir.is_dir():
            raise MissingInputError(
                f"pred_dir={pred_dir} is not a folder of <split>/<stem>.png or <stem>.png"
            )
        meta = {"pred_dir": str(pred_dir), "checkpoint": None, "backbone": None}
        return prediction_reader(pred_dir), None, meta | {"strategy": None, "resize_mode": None}
    onnx = str(cfg.get("runtime", "torch")) == "onnx"
    # torch weights load on the CPU; Lightning moves the module to each rank's device
    net, meta = load_network(cfg, resolve_device(cfg.device) if onnx else torch.device("cpu"))
    precision = inference_precision(cfg)
    strategy, resize_mode = (
        str(cfg.test_strategy),
        cast(ResizeMode, str(cfg.resize_mode)),
    )  # checked by infer_alpha

    def predict(batch: Mapping[str, Any]) -> Tensor:
        return infer_alpha(net, batch["image"], strategy, resize_mode, precision=precision).alpha

    meta |= {"strategy": strategy, "resize_mode": resize_mode}
    return predict, net if isinstance(net, nn.Module) else None, meta


def run_evaluation(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` (or ``cfg.pred_dir``) on every split through ``trainer.test``
    (``mode=video``: on clips, :func:`run_video_evaluation`).

    Runs on ``trainer.devices`` processes (DDP) with the single-device numbers: each image is scored
    once, the means are reduced from the metrics' sums and the per-image values gathered from every
    rank; rank 0 writes ``metrics.json`` and ``per_image.csv`` into the run directory.

    Returns:
        The ``metrics.json`` document (on every rank).
    """
    mode = str(cfg.get("mode", "image"))
    if mode not in MODES:
        raise SettingError(f"mode={mode!r}: expected {' or '.join(MODES)}")
    if mode == "video":
        return run_video_evaluation(cfg)
    out_dir = Path(cfg.paths.output_dir)
    resolve_device(
        str(cfg.get("device", "auto"))
    )  # a device this machine lacks: refused before anything loads
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        logger=False,  # set once the weights are loaded: W&B tags and config name the backbone loaded
        callbacks=[ProgressLog(cfg.get("progress_every_n_images", 50))],  # log lines without a terminal
        enable_checkpointing=False,
        enable_model_summary=False,
        sync_batchnorm=False,  # evaluation uses the BatchNorm running statistics
        **trainer_device_settings(cfg),
    )
    if str(cfg.get("runtime", "torch")) == "onnx" and not cfg.get("pred_dir") and trainer.world_size > 1:
        raise SettingError(
            f"runtime=onnx runs on one device, not {trainer.world_size}: set trainer.devices=1 "
            "(or evaluate the checkpoint with runtime=torch on several)"
        )
    predict, net, meta = build_predictor(cfg)
    trainer.loggers = instantiate_loggers(cfg.get("logger"), cfg, resolved={"backbone": meta["backbone"]})
    datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg=False)
    sheet_portraits = int(cfg.get("contact_sheet") or 0)
    save_mattes = cfg.save_predictions or (sheet_portraits > 0 and not cfg.get("pred_dir"))
    module = MatteEvaluationModule(
        predict,
        net=net,
        metrics=list(cfg.metrics),
        save_dir=out_dir / "predictions" if save_mattes else None,
    )
    log_hyperparameters(cfg, module, trainer, resolved=_resolved_config(cfg, meta))
    trainer.test(module, datamodule=datamodule, verbose=False)
    results, gaps = module.test_results, module.test_gaps
    meta |= {
        "data_root": str(datamodule.hparams.root),
        "device": str(trainer.strategy.root_device),
        "processes": trainer.world_size,
        "versions": software_versions(),
    }
    doc = results_document(results, gaps, meta)
    if trainer.is_global_zero:
        write_reports(results, doc, out_dir)
        print_table(results, gaps)
        log_per_image_table(trainer.loggers, results)
        log.info("Metrics: %s (per image: %s)", out_dir / "metrics.json", out_dir / "per_image.csv")
        if sheet_portraits > 0:
            _write_contact_sheet(cfg, datamodule.eval_sets, results, meta, sheet_portraits)
    return doc


def _write_contact_sheet(
    cfg: DictConfig, eval_sets: Sequence[Any], results: Sequence[SplitResult], meta: Mapping[str, Any], n: int
) -> None:
    """``contact_sheet.png`` beside metrics.json: the first ``n`` portraits of every split."""
    out_dir = Path(cfg.paths.output_dir)
    mattes = Path(str(cfg.pred_dir)) if cfg.get("pred_dir") else out_dir / "predictions"
    per_image = {r.name: r.per_image for r in results}
    scores = ", ".join(f"{r.name} MAD {r.mean['mad']:.3f}" for r in results if "mad" in r.mean)
    source = Path(str(meta["checkpoint"])).name if meta.get("checkpoint") else f"mattes of {mattes}"
    details = ", ".join(str(v) for v in (meta.get("backbone"), meta.get("strategy")) if v)
    title = f"{source} ({details})" if details else source
    path = out_dir / "contact_sheet.png"
    portraits = evaluation_portraits(eval_sets, mattes, per_image, n)
    write_contact_sheet(path, portraits, f"{title}: {scores}" if scores else title)
    log.info("Contact sheet: %s", path)


def _resolved_config(cfg: DictConfig, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The config entries known only once the weights are loaded, for the loggers."""
    backbone = cast(
        dict[str, Any],
        OmegaConf.to_container(cfg.backbone, resolve=True)
        if OmegaConf.is_config(cfg.get("backbone"))
        else {},
    )
    return {
        "backbone": {**backbone, "name": meta["backbone"], "requested": backbone_choice(cfg)},
        "checkpoint": meta["checkpoint"],
    }


def _evaluate(cfg: DictConfig) -> float | None:
    """The Hydra job; returns the SAD of the first split (for sweeps; the video mode: dtSSD)."""
    doc = task_wrapper(run_evaluation, check=EVAL_CHECK)(cfg)
    first: Any = next(iter(doc.values()), {})
    return first.get("mean", {}).get("sad") if isinstance(first, dict) else None
    first = next(iter(doc.values()), {})
    key = "dtssd" if str(cfg.get("mode", "image")) == "video" else "sad"
    return first.get("mean", {}).get(key) if isinstance(first, dict) else None


main = hydra_app("eval", _evaluate)

if __name__ == "__main__":
    main()
