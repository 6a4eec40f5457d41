"""A batch of independent jobs over a process pool, one process per core, results as they finish.

The data-preparation steps (fg/bg estimation, packing) run one job per image; one unreadable image
is a result to report, never a reason to stop the other thousands, so jobs return their status
instead of raising.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

import cv2

Result = TypeVar("Result")


def run_jobs(jobs: Sequence[Any], workers: int, run: Callable[[Any], Result]) -> Iterator[Result]:
    """``run(job)`` for every job, in this process or in ``workers`` processes, as they finish.

    ``run`` must be a module-level function (it is pickled for the workers) that never raises.
    """
    if workers <= 1:
        yield from map(run, jobs)
        return
    # spawn, not fork: numba's and OpenCV's thread pools are not fork-safe once started.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        futures: list[Future] = [pool.submit(run, job) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def default_workers() -> int:
    """min(cpu count, 8): the jobs are CPU-bound and one process per core saturates the machine."""
    return max(1, min(os.cpu_count() or 1, 8))


def _init_worker() -> None:
    # One process per core already: keep OpenCV and numba from spawning threads of their own.
    cv2.setNumThreads(1)
    try:
        import numba

        numba.set_num_threads(1)
    except (ImportError, ValueError):
        pass
