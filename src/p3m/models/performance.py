"""Speed and memory switches of the network: channels-last layout, torch.compile, activation checkpointing.

They change how the maths runs, never what it computes (up to floating-point order, and max-pool
tie-breaking under channels-last: near-ties can pick another index, so mattes can move there; the
parity tests stay on fp32 contiguous). Mixed precision is Lightning's ``trainer.precision``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from p3m.models.components.backbones.swin import SwinBlock
from p3m.models.components.backbones.vitae import NormalCell

log = logging.getLogger(__name__)

# The transformer blocks whose activations dominate training memory (attention maps, MLP hiddens).
CHECKPOINTED_BLOCKS: tuple[type[nn.Module], ...] = (SwinBlock, NormalCell)
_MARK = "_p3m_activation_checkpointing"


def _checkpointed(forward: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # Only while gradients are recorded: inference keeps the plain call (nothing to save).
    if torch.is_grad_enabled():
        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def enable_activation_checkpointing(
    net: nn.Module, block_types: tuple[type[nn.Module], ...] = CHECKPOINTED_BLOCKS
) -> int:
    """Recompute each transformer block's activations in the backward pass instead of storing them.

    The blocks keep their parameters and state-dict keys (their ``forward`` is wrapped in place);
    calling this twice is harmless. A backbone without such blocks (ResNet-34) is left unchanged.

    Args:
        net: The network (P3M-Net), modified in place.
        block_types: Module classes to checkpoint, one call each.

    Returns:
        How many blocks are checkpointed.
    """
    count = 0
    for module in net.modules():
        if isinstance(module, block_types):
            if not getattr(module, _MARK, False):
                module.forward = functools.partial(_checkpointed, module.forward)
                setattr(module, _MARK, True)
            count += 1
    if count == 0:
        log.warning("activation checkpointing: no transformer block in %s, nothing to do", type(net).__name__)
    return count


def to_channels_last(net: nn.Module) -> nn.Module:
    """Store the network's 4-D weights channels-last (NHWC), which oneDNN and cuDNN run faster."""
    return net.to(memory_format=torch.channels_last)


def compile_in_place(net: nn.Module, options: bool | Mapping[str, Any] | None) -> nn.Module:
    """``torch.compile`` the network in place (``nn.Module.compile``: the state-dict keys stay the same).

    Args:
        net: The network.
        options: False/None: nothing; True: the defaults (inductor, also on CPU); a mapping: keyword
            arguments of ``torch.compile`` (``backend``, ``mode``, ``dynamic``, ``fullgraph``).
    """
    if not options:
        return net
    kwargs = dict(options) if isinstance(options, Mapping) else {}
    net.compile(**kwargs)
    return net


def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def warn_if_bf16_is_emulated(trainer: Any) -> None:
    """Warn when a CPU run asks for bf16 that this CPU lacks: its convolutions fall back to a slow path.

    On a CPU without AVX-512 BF16 or AMX a bf16 step takes many times the fp32 one (docs/performance.md,
    ``bench/bench_train_step.py``).
    """
    cpu = trainer.strategy.root_device.type == "cpu"
    if cpu and str(trainer.precision).startswith("bf16") and not cpu_has_native_bf16():
        log.warning(
            "trainer.precision=%s on a CPU without native bf16 (no AVX-512 BF16 / AMX): convolutions run "
            "on a slow fallback, ~10x slower than fp32 here; use trainer.precision=32",
            trainer.precision,
        )
