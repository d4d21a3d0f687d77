"""The writer side of a run: a :class:`~featx.store.StoreWriter` fed from a queue in its own thread.

The forward pass of batch ``k+1`` runs while batch ``k`` is written to HDF5: writes stay off the
critical path. Skipped rows (``reason != ""``) are recorded with :meth:`StoreWriter.skip`;
contiguous good rows go in as one :meth:`StoreWriter.add_batch`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import numpy as np

from featx.store import StoreWriter


class BackgroundWriter:
    """Feeds a :class:`StoreWriter` from a queue in its own thread (HDF5 writes off the critical path)."""

    def __init__(self, writer: StoreWriter, on_batch: Callable[[int], None] | None = None, depth: int = 8):
        self.writer = writer
        self.on_batch = on_batch
        self.error: BaseException | None = None
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._t = threading.Thread(target=self._run, name="featx-writer", daemon=True)
        self._t.start()

    def put(self, indices: np.ndarray, feats: np.ndarray, reasons: list[str]) -> None:
        if self.error is not None:
            raise self.error
        self._q.put((indices, feats, reasons))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain after a failure
            try:
                self._write(*item)
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                self.error = e

    def _write(self, indices: np.ndarray, feats: np.ndarray, reasons: list[str]) -> None:
        ok = np.array([not r for r in reasons], dtype=bool)
        i, n = 0, len(indices)
        while i < n:
            if not ok[i]:
                self.writer.skip(int(indices[i]), reasons[i])
                i += 1
                continue
            j = i
            while j < n and ok[j]:
                j += 1
            self.writer.add_batch(int(indices[i]), feats[i:j])
            i = j
        if self.on_batch is not None:
            self.on_batch(int(indices[-1]) + 1)

    def close(self) -> None:
        """Write everything queued, stop the thread, re-raise its error if any."""
        self._q.put(None)
        self._t.join()
        if self.error is not None:
            raise self.error
