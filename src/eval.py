"""Evaluate a checkpoint, or existing predictions, on every evaluation split of the data config.

Examples:
    python src/eval.py ckpt_path=best.ckpt data.root=/path/to/P3M-10k
    python src/eval.py ckpt_path=p3mnet_pretrained_on_p3m10k.pth test_strategy=hybrid   # the authors' file
    python src/eval.py ckpt_path=latest data=synthetic backbone=resnet34 save_predictions=true
    python src/eval.py pred_dir=outputs/other_method data.root=/path/to/P3M-10k          # no model
    python src/eval.py ckpt_path=best.ckpt trainer.devices=4     # 4 GPUs (DDP), the 1-GPU numbers

Runs through ``trainer.test`` (the evaluator of validation): ``device=cpu|cuda|cuda:1`` sets the
trainer's accelerator/devices; ``trainer.devices=N`` evaluates on N processes, each image once.

Writes metrics.json, per_image.csv (and predictions/<split>/<stem>.png) into the run directory
(rank 0); logs ``test/p/<metric>``, ``test/np/<metric>`` and ``test/np_minus_p/<metric>``.
Exit status: 0 done, 2 user error (the message says which setting or file), 130 Ctrl-C.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import src  # noqa: F401  (sets PROJECT_ROOT for conf/paths)
from src.inference.runner import run_evaluation
from src.utils.config_checks import ConfigCheck
from src.utils.run import task_wrapper

EVAL_CHECK = ConfigCheck(
    types={
        "ckpt_path": (str, type(None)),
        "pred_dir": (str, type(None)),
        "test_strategy": str,
        "resize_mode": str,
        "save_predictions": bool,
        "channels_last": bool,
        "precision": (int, str),
        "metrics": list,
        "device": str,
    },
    known_keys_only=True,
)


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the SAD of the first split (for sweeps)."""
    doc = task_wrapper(run_evaluation, check=EVAL_CHECK)(cfg)
    first = next(iter(doc.values()), {})
    return first.get("mean", {}).get("sad") if isinstance(first, dict) else None


if __name__ == "__main__":
    main()
