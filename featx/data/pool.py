"""Decode and resize images in parallel on all cores, yielding results in source order."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Iterator, Sequence

import numpy as np

from featx.data.decode import decode_task, init_pool_worker, init_worker


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _start_method() -> str:
    """``fork`` (fast, no re-import of ``__main__``) unless TensorFlow has started threads in this
    process, where forking is unsafe; then ``forkserver``."""
    methods = mp.get_all_start_methods()
    if "fork" in methods and "tensorflow" not in sys.modules:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def decode_images(
    paths: Sequence[str],
    *,
    size: int | None,
    resize: str = "aspect",
    start: int = 0,
    workers: int | None = None,
    max_pixels: int | None = None,
) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """Yield ``(index, image or None, skip reason or None)`` for ``paths[start:]``, in order.

    ``workers=1`` decodes in this process. Otherwise a process pool decodes ahead of the consumer.
    Images over ``max_pixels`` (header size) are skipped undecoded.
    """
    workers = workers or default_workers()
    tasks = ((i, str(paths[i]), size, resize, max_pixels) for i in range(start, len(paths)))
    if workers == 1 or len(paths) - start < 2:
        init_worker()
        yield from map(decode_task, tasks)
        return
    ctx = mp.get_context(_start_method())
    chunk = max(1, min(16, (len(paths) - start) // (workers * 8) or 1))
    with ctx.Pool(workers, initializer=init_pool_worker) as pool:
        yield from pool.imap(decode_task, tasks, chunksize=chunk)
