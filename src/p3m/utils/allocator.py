"""Keep freed memory inside the process: CPU training stops re-faulting its activations every step.

glibc's ``malloc`` serves blocks over 32 MiB with ``mmap`` and gives them back to the OS when they
are freed, so each training step maps, page-faults (zero-fills) and unmaps every large activation
again, which costs seconds of system time per CPU step. ``mallopt(3)`` can serve every block from
the heap (``M_MMAP_MAX`` 0) and never trim it (``M_TRIM_THRESHOLD`` -1): the memory is mapped once
and reused (the gain: docs/performance.md, ``bench/bench_train_step.py --keep-freed-memory``). The
process keeps its peak memory until it exits, which a training run reaches every step anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse (see the module docstring).

    Returns:
        True when applied; False where there is no glibc (macOS, Windows, musl), a no-op.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # not glibc (musl's mallopt does nothing)
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, -1) == 1
    if not applied:
        log.warning("mallopt refused to keep freed memory: training runs with the default allocator")
    return applied
