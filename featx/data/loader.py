"""Image files -> batches of uint8 pixels, decoded on threads straight into batch buffers.

The input pipeline that needs no TensorFlow (JAX and PyTorch backends): a thread pool runs
featx's own decode (:func:`featx.data.decode.decode_task`: EXIF, gray, CMYK, alpha, 16-bit, the
``aspect``/``plain`` resize of ``featx build``) and writes each image into its slot of a
preallocated ``(B, S, S, 3)`` buffer; ``prefetch`` batches are in flight ahead of the consumer.
Batches come out in source order, the last partial one included; a file that cannot be decoded
leaves a blank image and its reason (``""`` for a usable image), exactly as the ``tf.data``
reader does, so both give the same rows, skips and pixels.

Pillow and OpenCV release the GIL while decoding and resizing, so threads scale with the cores.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from featx.data.decode import decode_task
from featx.data.pool import default_workers

#: Batches decoded ahead of the consumer.
PREFETCH_BATCHES = 2


def _fill(buf: np.ndarray, j: int, task: tuple) -> str:
    _, img, reason = decode_task(task)
    if img is None:
        buf[j] = 0
        return reason or "undecodable image"
    buf[j] = img
    return ""


def iter_image_batches(
    paths: Sequence[str],
    *,
    size: int,
    batch_size: int,
    resize: str = "aspect",
    start: int = 0,
    workers: int | None = None,
    max_pixels: int | None = None,
    prefetch: int = PREFETCH_BATCHES,
) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """Yield ``(index int64 (B,), images uint8 (B, size, size, 3), reasons [str] * B)`` for
    ``paths[start:]``, in order. ``workers`` threads decode (default: one per core)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    paths = [str(p) for p in paths]
    n = len(paths)
    if start >= n:
        return
    import cv2

    cv2.setNumThreads(1)  # the threads are the parallelism
    starts = iter(range(start, n, batch_size))
    pending: collections.deque = collections.deque()
    with ThreadPoolExecutor(max_workers=workers or default_workers(), thread_name_prefix="featx-decode") as pool:

        def submit() -> bool:
            b = next(starts, None)
            if b is None:
                return False
            e = min(b + batch_size, n)
            buf = np.empty((e - b, size, size, 3), np.uint8)
            futures = [pool.submit(_fill, buf, j, (i, paths[i], size, resize, max_pixels)) for j, i in enumerate(range(b, e))]
            pending.append((b, e, buf, futures))
            return True

        try:
            for _ in range(max(1, prefetch) + 1):
                if not submit():
                    break
            while pending:
                b, e, buf, futures = pending.popleft()
                reasons = [f.result() for f in futures]
                submit()
                yield np.arange(b, e, dtype=np.int64), buf, reasons
        finally:
            for *_, futures in pending:  # a consumer that stops early: drop what is queued
                for f in futures:
                    f.cancel()


def iter_store_batches(path: str, *, batch_size: int, start: int = 0, stop: int | None = None, offset: int = 0,
                       prefetch: int = PREFETCH_BATCHES) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """Rows ``[start, stop)`` of an images HDF5 as ``(index, images, reasons)`` batches, read in
    contiguous slabs one batch ahead on a thread (indices relative to ``offset``)."""
    from featx.store import StoreReader

    def gen():
        with StoreReader(path, kind="images") as reader:
            i = start - offset
            for x, _ in reader.iter_batches(batch_size, start=start, stop=stop):
                yield np.arange(i, i + len(x), dtype=np.int64), x, [""] * len(x)
                i += len(x)

    yield from prefetched(gen(), prefetch)


def prefetched(iterator, depth: int = PREFETCH_BATCHES):
    """``iterator``'s items, produced ``depth`` ahead on a background thread (exceptions re-raised)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def work():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((True, done))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put((False, e))

    t = threading.Thread(target=work, name="featx-prefetch", daemon=True)
    t.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
