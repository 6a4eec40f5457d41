"""Lightning's messages that offer the user nothing, dropped where Lightning emits them.

- its advertising tips (``💡 Tip: ... try installing litlogger / litmodels``), logged at every run;
- torch's ``FutureWarning`` about ``LeafSpec``, which Lightning's own code triggers (nothing for the
  user to change; it goes away with a Lightning release that follows torch).

Lightning's other warnings and messages stay: they tell the user about their run.
"""

from __future__ import annotations

import logging
import warnings

TIP_PREFIX = "💡 Tip:"
# the loggers of Lightning's rank_zero_info (fabric's and pytorch's copies)
RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(TIP_PREFIX)


def silence_lightning_noise() -> None:
    """Drop Lightning's tips and its LeafSpec FutureWarning in this process (idempotent)."""
    for name in RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if _not_a_tip not in logger.filters:
            logger.addFilter(_not_a_tip)
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.",
    )
