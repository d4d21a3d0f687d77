"""Readers for featx HDF5 files: metadata, batches in order, block-shuffled batches, tf.data.

Reads are contiguous slabs (``ds[a:b]``), never fancy indexing of thousands of rows. A shuffled
epoch visits blocks of contiguous rows in a seeded random order and shuffles rows inside each block
in memory; every row is seen exactly once per epoch and only the final batch may be partial.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from featx.errors import FeatxError
from featx.store.format import ATTR_COMPLETE, ATTR_CONFIG, ATTR_KIND, DATASET_FOR_KIND

#: Default bytes per shuffle block.
BLOCK_BYTES = 32 * 1024 * 1024


def _decode(values) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _attr(v):
    if isinstance(v, bytes):
        v = v.decode("utf-8")
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, np.ndarray):
        v = v.tolist()
    return v


class StoreReader:
    """Read a complete featx file.

    ``StoreReader(path, kind="images")`` checks that the file is a finished featx file of that kind.
    Labels, label names (as ``str``) and paths are loaded once; rows are read on demand.
    """

    def __init__(self, path: str | os.PathLike, kind: str | None = None):
        self.path = Path(path)
        if not self.path.exists():
            hint = " (an unfinished run: rerun the command that makes it)" if Path(str(path) + ".partial").exists() else ""
            raise FeatxError(f"{self.path} does not exist{hint}")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise FeatxError(f"{self.path} is not a readable HDF5 file ({e})") from None
        f = self._file
        file_kind = _attr(f.attrs.get(ATTR_KIND))
        if file_kind not in DATASET_FOR_KIND:
            self.close()
            raise FeatxError(f"{self.path} is not a featx file (no 'kind' attribute)")
        if not bool(f.attrs.get(ATTR_COMPLETE, False)):
            self.close()
            raise FeatxError(f"{self.path} is incomplete; rerun the command that writes it")
        if kind is not None and file_kind != kind:
            self.close()
            made_by = {"images": "featx build", "features": "featx extract"}
            raise FeatxError(
                f"{self.path} holds {file_kind}, expected {kind} (a file written by {made_by[kind]})"
            )
        self.kind = file_kind
        self.data = f[DATASET_FOR_KIND[file_kind]]
        self.labels = f["labels"][:].astype(np.int64)
        self.label_names = _decode(f["label_names"][:])
        self.attrs = {k: _attr(v) for k, v in f.attrs.items()}
        self.config = json.loads(self.attrs.get(ATTR_CONFIG) or "{}")

    # ------------------------------------------------------------------ metadata
    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def row_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    @property
    def paths(self) -> list[str]:
        return _decode(self._file["paths"][:])

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def mean_rgb(self) -> list[float] | None:
        m = self.attrs.get("mean_rgb")
        return None if m is None else [float(x) for x in m]

    # ------------------------------------------------------------------ rows
    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` as one contiguous read."""
        return self.data[start:stop]

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All rows and labels in memory (features fit: 25k x 2048 float32 is 205 MB)."""
        return self.data[:], self.labels.copy()

    def _block_rows(self, batch_size: int, block_rows: int | None) -> int:
        if block_rows:
            return max(1, int(block_rows))
        row_bytes = max(1, int(np.prod(self.row_shape)) * self.data.dtype.itemsize)
        return max(batch_size, BLOCK_BYTES // row_bytes)

    def iter_batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int | None = None,
        block_rows: int | None = None,
        start: int = 0,
        stop: int | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(x, y)`` batches; the last partial batch is included.

        In order by default. With ``shuffle=True``, contiguous blocks are visited in a random order
        drawn from ``seed`` and rows are shuffled within each block.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
        n = len(self) if stop is None else min(stop, len(self))
        block = self._block_rows(batch_size, block_rows)
        starts = np.arange(start, n, block)
        rng = np.random.default_rng(seed)
        if shuffle:
            starts = rng.permutation(starts)
        carry_x: np.ndarray | None = None
        carry_y: np.ndarray | None = None
        for b in starts:
            e = min(int(b) + block, n)
            x = self.data[int(b) : e]
            y = self.labels[int(b) : e]
            if shuffle:
                perm = rng.permutation(len(x))
                x, y = x[perm], y[perm]
            if carry_x is not None:
                x = np.concatenate([carry_x, x])
                y = np.concatenate([carry_y, y])
                carry_x = carry_y = None
            full = (len(x) // batch_size) * batch_size
            for i in range(0, full, batch_size):
                yield x[i : i + batch_size], y[i : i + batch_size]
            if full < len(x):
                carry_x, carry_y = x[full:], y[full:]
        if carry_x is not None and len(carry_x):
            yield carry_x, carry_y

    def tf_dataset(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        initial_epoch: int = 0,
        block_rows: int | None = None,
    ):
        """A ``tf.data.Dataset`` of ``(x, y)`` batches read from this file.

        Each new iteration (each Keras epoch) reshuffles with seed ``seed + epoch``, counted from
        ``initial_epoch`` so a resumed run sees the same order as an uninterrupted one. The file is
        reopened inside the generator, so the dataset does not share this reader's handle.
        """
        import tensorflow as tf

        path = str(self.path)
        epoch = [initial_epoch]
        row_shape = self.row_shape
        dtype = tf.as_dtype(self.data.dtype)

        def gen():
            e = epoch[0]
            epoch[0] += 1
            with StoreReader(path) as r:
                yield from r.iter_batches(
                    batch_size, shuffle=shuffle, seed=None if not shuffle else seed + e, block_rows=block_rows
                )

        sig = (
            tf.TensorSpec(shape=(None, *row_shape), dtype=dtype),
            tf.TensorSpec(shape=(None,), dtype=tf.int64),
        )
        return tf.data.Dataset.from_generator(gen, output_signature=sig)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()
            self._file = None

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_store(path: str | os.PathLike, kind: str | None = None) -> StoreReader:
    """Open a finished featx file, checking its kind when given."""
    return StoreReader(path, kind=kind)


def peek_kind(path: str | os.PathLike) -> str | None:
    """The ``kind`` attr of a featx file, or None when it is not one (no exception)."""
    try:
        with h5py.File(path, "r") as f:
            return _attr(f.attrs.get(ATTR_KIND))
    except OSError:
        return None
