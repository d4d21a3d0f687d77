"""Decode and resize images in parallel on all cores, in source order: one image at a time
(:func:`decode_images`) or straight into slab buffers (:func:`decode_into_slabs`, ``featx build``)."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from featx.data import decode
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
    engine: str = "processes",
) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """Yield ``(index, image or None, skip reason or None)`` for ``paths[start:]``, in order.

    ``workers=1`` decodes in this process. Otherwise ``engine="processes"`` runs a process pool
    ahead of the consumer, ``"threads"`` a thread pool (Pillow's decoders and OpenCV's resize
    release the GIL, and no image is pickled between processes: 2-5x the process pool's images/s
    on 2 busy cores, the same pixels). Images over ``max_pixels`` (header size) are skipped undecoded.
    """
    workers = workers or default_workers()
    tasks = ((i, str(paths[i]), size, resize, max_pixels) for i in range(start, len(paths)))
    if workers == 1 or len(paths) - start < 2:
        init_worker()
        yield from map(decode_task, tasks)
        return
    if engine == "threads":
        yield from _thread_decode(tasks, workers)
        return
    ctx = mp.get_context(_start_method())
    chunk = max(1, min(16, (len(paths) - start) // (workers * 8) or 1))
    with ctx.Pool(workers, initializer=init_pool_worker) as pool:
        yield from pool.imap(decode_task, tasks, chunksize=chunk)


def _thread_decode(tasks, workers: int) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """``decode_task`` over ``tasks`` on ``workers`` threads, in order, at most ``8 x workers``
    images ahead of the consumer (bounded memory); pending work is cancelled when the consumer stops."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor
    from itertools import islice

    init_worker()  # one OpenCV thread per call: the pool is the parallelism
    ex = ThreadPoolExecutor(workers, thread_name_prefix="featx-decode")
    try:
        ahead = deque(ex.submit(decode_task, t) for t in islice(tasks, 8 * workers))
        while ahead:
            done = ahead.popleft().result()
            for t in islice(tasks, 1):
                ahead.append(ex.submit(decode_task, t))
            yield done
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


#: Images one decoding task takes in turn (fewer futures than one per image; balanced over threads).
TASK_IMAGES = 4
#: Slabs being decoded at once: while the caller writes one, the threads fill the next ones.
SLABS_AHEAD = 3

#: ``emit(first, n_sources, rows, skips, channel_sums)`` (see :func:`decode_into_slabs`)
Emit = Callable[[int, int, np.ndarray, list, "list[int] | None"], None]


def _decode_run(paths, first: int, buf: np.ndarray, lo: int, hi: int, done: np.ndarray, reasons: dict,
                resize: str, max_pixels: int | None, sums: bool) -> np.ndarray | None:
    """Decode sources ``first+lo .. first+hi-1`` into ``buf[lo:hi]`` (a thread's task). A source that
    gives no image is recorded in ``reasons`` and its row zeroed; ``done[j]`` is set as row ``j`` is
    finished. Returns the exact per-channel sums of the rows (uint64) when ``sums``."""
    total = [0, 0, 0] if sums else None
    for j in range(lo, hi):
        try:
            decode.load_image_into(paths[first + j], buf[j], resize, max_pixels=max_pixels)
        except Exception as e:  # noqa: BLE001 - one odd file must not stop a 100k-image build
            reasons[first + j] = decode.skip_reason(e)
            buf[j] = 0  # adds nothing to the sums; dropped before the slab is written
        else:
            if total is not None:
                total = [a + b for a, b in zip(total, _image_sums(buf[j]))]
        done[j] = True
    return total


def _image_sums(image: np.ndarray) -> list[int]:
    """Exact per-channel sums of one ``(H, W, 3)`` uint8 image (OpenCV: 6x numpy's uint64 sum; its
    integer block sums are exact in float64 up to 2**53 / 255 pixels)."""
    import cv2

    return [int(v) for v in cv2.sumElems(image)[:3]]


def channel_sums(rows: np.ndarray) -> list[int]:
    """Exact per-channel sums of ``(N, H, W, 3)`` uint8 rows."""
    total = [0, 0, 0]
    for image in rows:
        total = [a + b for a, b in zip(total, _image_sums(image))]
    return total


def decode_into_slabs(
    paths: Sequence[str],
    emit: Emit,
    *,
    size: int,
    resize: str = "aspect",
    start: int = 0,
    workers: int | None = None,
    max_pixels: int | None = None,
    rows: int = 64,
    sums: bool = False,
) -> int:
    """Decode ``paths[start:]`` straight into ``(rows, size, size, 3)`` uint8 slab buffers on
    ``workers`` threads and hand each slab, in source order, to ``emit`` on the calling thread, while
    the threads go on with the next slabs. Returns the number of sources handed over.

    ``emit(first, n_sources, rows, skips, channel_sums)``: sources ``first .. first+n_sources-1``;
    ``rows`` their images in order without the skipped ones (a view into a buffer that is reused
    once ``emit`` returns: write it or copy it); ``skips`` ``[(index, reason)]``; ``channel_sums``
    the exact per-channel sums of ``rows`` (ints) when ``sums``, else ``None``.

    Each image is decoded once, into its row (:func:`featx.data.decode.load_image_into`: the same
    pixels as :func:`decode_images`), and no image is copied between threads or processes. When the
    caller is interrupted (Ctrl-C, SIGTERM) or a task fails, queued work is cancelled, running work
    finishes, the sources already decoded in order are emitted, and the exception propagates.
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    workers = workers or default_workers()
    rows = max(1, int(rows))
    n_total = len(paths)
    init_worker()  # one OpenCV thread per call: the threads are the parallelism
    free = [np.empty((rows, size, size, 3), np.uint8) for _ in range(min(SLABS_AHEAD, -(-(n_total - start) // rows) or 1))]
    pending: deque = deque()  # (first, n, buf, done, reasons, futures), in source order
    next_first = start
    emitted = 0

    def submit() -> None:
        nonlocal next_first
        while free and next_first < n_total:
            buf = free.pop()
            first, n = next_first, min(rows, n_total - next_first)
            done, reasons = np.zeros(n, bool), {}
            futs = [ex.submit(_decode_run, paths, first, buf, lo, min(lo + TASK_IMAGES, n), done, reasons,
                              resize, max_pixels, sums) for lo in range(0, n, TASK_IMAGES)]
            pending.append((first, n, buf, done, reasons, futs))
            next_first += n

    def hand_over(first: int, n: int, buf: np.ndarray, reasons: dict, total) -> None:
        nonlocal emitted
        skips = sorted(reasons.items())
        if skips:
            keep = np.ones(n, bool)
            keep[[i - first for i, _ in skips]] = False
            images = buf[:n][keep]  # a copy, only for slabs with skipped files
        else:
            images = buf[:n]
        emit(first, n, images, skips, None if total is None else [int(v) for v in total])
        emitted += n

    ex = ThreadPoolExecutor(max(1, workers), thread_name_prefix="featx-decode")
    emitting = False
    try:
        submit()
        while pending:
            first, n, buf, done, reasons, futs = pending[0]
            parts = [f.result() for f in futs]
            pending.popleft()
            total = None if not sums else [sum(p[c] for p in parts) for c in range(3)]
            emitting = True
            hand_over(first, n, buf, reasons, total)
            emitting = False
            free.append(buf)
            submit()
    except BaseException:
        ex.shutdown(wait=True, cancel_futures=True)  # queued tasks dropped; running ones finish
        if pending and not emitting:
            first, n, buf, done, reasons, _ = pending[0]
            k = int(np.argmin(done)) if not done.all() else n  # rows finished in order from the start
            if k:
                part = {i: r for i, r in reasons.items() if i < first + k}
                hand_over(first, k, buf, part, channel_sums(buf[:k]) if sums else None)  # skipped rows are zeros
        raise
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    return emitted
