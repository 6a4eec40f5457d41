"""Anonymize portraits offline: ``p3m anonymize input=DIR output=DIR [key=value ...]``.

Detects faces with a registered detector (CenterFace by default; install it with
``make anonymize-deps``), obfuscates them and writes a P3M-style folder. Every key is in
conf/anonymize.yaml; existing outputs are replaced only with ``overwrite=true``. Exit status: 0
every image written; 1 some images failed (listed in the log and the report, with their count), the
others are written; 2 user error, nothing done; 130 Ctrl-C.

Examples:
    p3m anonymize input=photos/ output=photos_anon/
    p3m anonymize input=P3M-500-NP/original_image alpha_dir=P3M-500-NP/mask output=np_blurred
    p3m anonymize input=photos/ output=out/ method=mosaic mosaic_block=0.1 threshold=0.3

In a clone, ``python src/anonymize.py ...`` is the same command.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from p3m.privacy.anonymizer import IMAGE_FORMATS, REPORT_NAME, AnonymizeReport, anonymize_folder, check_inputs
from p3m.privacy.detectors import create_detector
from p3m.privacy.obfuscate import METHODS, FaceObfuscator
from p3m.utils.config_checks import ConfigCheck
from p3m.utils.errors import UserError
from p3m.utils.hydra_app import hydra_app
from p3m.utils.run import exit_for_failures, task_wrapper

log = logging.getLogger(__name__)
ANONYMIZE_CHECK = ConfigCheck(
    types={
        "method": str,
        "blur_sigma": float,
        "mosaic_block": float,
        "band_kernel": int,
        "opaque_alpha": int,
        "detector": str,
        "threshold": float,
        "margin": float,
        "mask_shape": str,
        "image_format": str,
        "jpeg_quality": int,
        "keep_no_face": bool,
        "progress": bool,
        "overwrite": bool,
    },
    choices={"method": METHODS, "image_format": IMAGE_FORMATS},
    known_keys_only=True,
    free_form=("detector_kwargs",),  # passed on to the detector as they are
)


def anonymize(cfg: DictConfig) -> AnonymizeReport:
    """Build the detector and the obfuscator from ``cfg`` and anonymize ``cfg.input``."""
    for key in ("input", "output"):
        if OmegaConf.is_missing(cfg, key):
            raise UserError(
                f"set {key}=DIR: p3m anonymize input=DIR output=DIR [alpha_dir=DIR] [method=blur]"
            )
    # the settings and folders first: loading the detector takes seconds
    obfuscator = FaceObfuscator(
        method=cfg.method,
        blur_sigma=cfg.blur_sigma,
        mosaic_block=cfg.mosaic_block,
        band_kernel=cfg.band_kernel,
        opaque_alpha=cfg.opaque_alpha,
    )
    check_inputs(cfg.input, cfg.alpha_dir, cfg.image_format)
    detector = create_detector(cfg.detector, threshold=cfg.threshold, **cfg.get("detector_kwargs", {}))
    settings = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(settings, dict)
    settings.pop("paths", None)
    report = anonymize_folder(
        cfg.input,
        cfg.output,
        detector,
        obfuscator,
        alpha_dir=cfg.alpha_dir,
        margin=cfg.margin,
        mask_shape=cfg.mask_shape,
        image_format=cfg.image_format,
        jpeg_quality=cfg.jpeg_quality,
        keep_no_face=cfg.keep_no_face,
        progress=cfg.progress,
        settings=cast(dict[str, Any], settings),  # a DictConfig's keys are str
        overwrite=bool(cfg.overwrite),
    )
    for line in report.summary().splitlines():
        # Missed faces leak identities and failures lose images: make both stand out.
        (log.warning if line.startswith(("FAILED", "no face")) else log.info)(line)
    log.info("report: %s/%s", cfg.output, REPORT_NAME)
    return report


def _job(cfg: DictConfig) -> None:
    """The Hydra job; exits 1 when some images failed (0: everything written)."""
    report = task_wrapper(anonymize, check=ANONYMIZE_CHECK)(cfg)
    exit_for_failures(len(report.failures), "images")


main = hydra_app("anonymize", _job)

if __name__ == "__main__":
    main()
