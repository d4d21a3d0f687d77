"""Readers for featx HDF5 files: metadata, batches in order, block-shuffled batches, tf.data.

Reads are contiguous slabs (``ds[a:b]``), never fancy indexing of thousands of rows. A shuffled
epoch visits blocks of contiguous rows in a seeded random order and shuffles rows inside each block
in memory; every row is seen exactly once per epoch and only the final batch may be partial.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from featx.errors import FeatxError
from featx.store.format import (
    ATTR_COMPLETE,
    ATTR_CONFIG,
    ATTR_KIND,
    ATTR_PATHS_ESCAPED,
    ATTR_VERSION,
    DATASET_FOR_KIND,
)
from featx.utils import unescape_name

#: Default bytes per shuffle block.
BLOCK_BYTES = 32 * 1024 * 1024


def _decode(values, errors: str = "backslashreplace") -> list[str]:
    """Strings of an HDF5 dataset; bytes that are not UTF-8 (a foreign file) as ``\\xHH`` (labels)
    or, with ``errors="surrogateescape"``, as the file name they stand for (paths)."""
    return [v.decode("utf-8", errors) if isinstance(v, bytes) else str(v) for v in values]


def _attr(v):
    if isinstance(v, bytes):
        v = v.decode("utf-8", "backslashreplace")
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
        self.foreign = not any(a in f.attrs for a in (ATTR_KIND, ATTR_VERSION))
        if self.foreign:
            file_kind = self._open_foreign(kind)
        else:
            file_kind = _attr(f.attrs.get(ATTR_KIND))
            if file_kind not in DATASET_FOR_KIND:
                self.close()
                raise FeatxError(f"{self.path} is not a featx file (no 'kind' attribute)")
            if not bool(f.attrs.get(ATTR_COMPLETE, False)) or self.path.name.endswith(".partial"):
                self.close()
                raise FeatxError(f"{self.path} is incomplete; rerun the command that writes it")
        if kind is not None and file_kind != kind:
            self.close()
            made_by = {"images": "featx build", "features": "featx extract"}
            raise FeatxError(
                f"{self.path} holds {file_kind}, expected {kind} (a file written by {made_by[kind]}, "
                f"or an HDF5 file with datasets {kind!r} and 'labels')"
            )
        self.kind = file_kind
        if not isinstance(f.get(DATASET_FOR_KIND[file_kind]), h5py.Dataset):
            self._fail(f"has no '{DATASET_FOR_KIND[file_kind]}' dataset: the file is inconsistent; "
                       "rewrite it with the command that made it")
        self.data = f[DATASET_FOR_KIND[file_kind]]
        #: rows come back as this dtype (foreign images stored as float pixels are read as uint8)
        self.dtype = self.data.dtype
        if file_kind == "images" and self.data.dtype != np.uint8:
            self.dtype = np.dtype(np.uint8)
        if not self.foreign:
            self.labels, self.label_names = self._check_rows(self.data)
            self.attrs = {k: _attr(v) for k, v in f.attrs.items()}
            try:
                self.config = json.loads(self.attrs.get(ATTR_CONFIG) or "{}")
            except (TypeError, ValueError):
                self._fail(f"its '{ATTR_CONFIG}' attribute is not JSON: the file is inconsistent; "
                           "rewrite it with the command that made it")

    def _fail(self, msg: str):
        self.close()
        raise FeatxError(f"{self.path}: {msg}")

    def _check_rows(self, data: h5py.Dataset) -> tuple[np.ndarray, list[str]]:
        """Check once, for every command, that the datasets agree: the main dataset's shape and dtype,
        one numeric label per row that indexes the label names, one path per row. Returns
        ``(labels, label_names)``; a featx file must have its ``label_names``, a foreign one may not."""
        f, name = self._file, data.name.lstrip("/")
        again = "" if self.foreign else ": the file is inconsistent; rewrite it with the command that made it"
        want = {"features": 2, "images": 4}[self.kind]
        if data.ndim != want:
            shape = "(N, D)" if self.kind == "features" else "(N, height, width, channels)"
            self._fail(f"dataset '{name}' must be {shape}. Received shape {data.shape}{again}")
        if self.kind == "images" and data.shape[-1] not in (1, 3):
            self._fail(f"dataset 'images' must have 1 or 3 channels last. Received shape {data.shape}{again}")
        if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
            self._fail(f"dataset '{name}' must hold numbers. Received dtype {data.dtype}{again}")
        labels = f.get("labels")
        if not isinstance(labels, h5py.Dataset) or labels.ndim != 1 or not (
            np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
        ):
            self._fail(f"needs a 1-D numeric 'labels' dataset beside '{name}'{again}")
        n = int(data.shape[0])
        if labels.shape[0] != n:
            self._fail(f"'{name}' has {n} rows but 'labels' has {labels.shape[0]}{again}")
        raw = labels[:]
        if np.issubdtype(raw.dtype, np.floating) and not np.all(raw == np.round(raw)):
            self._fail(f"'labels' must be whole class numbers{again}")
        y = raw.astype(np.int64)
        if n and y.min() < 0:
            self._fail(f"'labels' must be >= 0. Received minimum {y.min()}{again}")
        names = f.get("label_names")
        if isinstance(names, h5py.Dataset):
            if names.ndim != 1 or not (names.dtype.kind in "SOU" or h5py.check_string_dtype(names.dtype)):
                self._fail(f"'label_names' must be a 1-D list of strings. Received shape {names.shape}, "
                           f"dtype {names.dtype}{again}")
            label_names = _decode(names[:])
            if n and y.max() >= len(label_names):
                self._fail(f"'labels' go up to {y.max()} but 'label_names' has {len(label_names)} names{again}")
        elif not self.foreign:
            self._fail(f"has no 'label_names' dataset{again}")
        else:
            label_names = [str(k) for k in range((int(y.max()) + 1) if n else 0)]
        paths = f.get("paths")
        if paths is not None and (not isinstance(paths, h5py.Dataset) or paths.ndim != 1 or paths.shape[0] != n):
            got = f"{paths.shape[0]} rows" if isinstance(paths, h5py.Dataset) and paths.ndim == 1 else "another shape"
            self._fail(f"'{name}' has {n} rows but 'paths' has {got}{again}")
        return y, label_names

    def _open_foreign(self, kind: str | None) -> str:
        """A file without featx attrs, such as the book's ``HDF5DatasetWriter`` output (datasets
        ``features`` or ``images``, ``labels``, optional ``label_names``): validated, then read as is."""
        f = self._file
        if self.path.name.endswith(".partial"):
            self._fail("is an unfinished featx run (.partial); rerun the command that writes it")
        found = [k for k in ("features", "images") if isinstance(f.get(k), h5py.Dataset)]
        if not found:
            self._fail("is not a featx file (no 'kind' attribute) and has no 'features' or 'images' dataset")
        file_kind = self.kind = kind if kind in found else found[0]
        data = f[file_kind]
        self.labels, self.label_names = self._check_rows(data)
        self.attrs = {}
        self.config = {}
        _say_foreign(self.path, file_kind, data.shape, len(self.label_names), isinstance(f.get("label_names"), h5py.Dataset))
        return file_kind

    # ------------------------------------------------------------------ metadata
    def __len__(self) -> int:
        return int(self.data.shape[0])

    @property
    def row_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[1:])

    @property
    def paths(self) -> list[str]:
        """Source names of the rows, exactly as the file system gave them (a file name that is not
        valid UTF-8 comes back with the same bytes, as ``os.fsdecode`` gives it; stored escaped, see
        :func:`featx.utils.escape_name`). A foreign file has none: ``row_0`` ..."""
        if "paths" not in self._file:
            return [f"row_{i}" for i in range(len(self))]
        names = _decode(self._file["paths"][:], "surrogateescape")
        return [unescape_name(n) for n in names] if self.attrs.get(ATTR_PATHS_ESCAPED) else names

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def mean_rgb(self) -> list[float] | None:
        """Per-channel means of a training images file (a foreign images file: computed by slabs)."""
        m = self.attrs.get("mean_rgb")
        if m is None and self.foreign and self.kind == "images" and len(self) and self.row_shape[-1] == 3:
            total = np.zeros(3, np.float64)
            step = max(1, BLOCK_BYTES // max(1, int(np.prod(self.row_shape)) * self.data.dtype.itemsize))
            for a in range(0, len(self), step):
                total += self.data[a : a + step].reshape(-1, 3).sum(axis=0, dtype=np.float64)
            m = self.attrs["mean_rgb"] = (total / (len(self) * self.row_shape[0] * self.row_shape[1])).tolist()
        return None if m is None else [float(x) for x in m]

    # ------------------------------------------------------------------ rows
    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` as one contiguous read."""
        return self._rows(start, stop)

    def read_into(self, out: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` read straight into ``out`` (C-contiguous, ``stop - start`` rows; HDF5
        converts to ``out``'s dtype): one contiguous read, no temporary array. Returns ``out``."""
        if self.kind == "images" and self.data.dtype != self.dtype:  # foreign float pixels: rounded copy
            out[...] = self._rows(start, stop)
        elif stop > start:
            self.data.read_direct(out, np.s_[start:stop], np.s_[0 : stop - start])
        return out

    def _rows(self, start, stop) -> np.ndarray:
        x = self.data[start:stop]
        if x.dtype != self.dtype:  # foreign float pixels 0..255 (the book's writer stores images as float)
            x = np.clip(np.rint(x), 0, 255).astype(self.dtype)
        return x

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All rows and labels in memory (features fit: 25k x 2048 float32 is 205 MB)."""
        return self._rows(0, None), self.labels.copy()

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
            x = self._rows(int(b), e)
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
        dtype = tf.as_dtype(self.dtype)

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


_SAID: set[str] = set()


def _say_foreign(path: Path, kind: str, shape, n_names: int, named: bool) -> None:
    """One info line per foreign file and process (stderr: stdout stays for results)."""
    key = str(Path(path).resolve())
    if key in _SAID:
        return
    _SAID.add(key)
    names = "label names from the file" if named else "label names default to the label numbers"
    print(f"info: {path} has no featx attributes: reading it as a foreign file ({kind} {tuple(shape)}, "
          f"{n_names} classes, {names})", file=sys.stderr, flush=True)


def open_store(path: str | os.PathLike, kind: str | None = None) -> StoreReader:
    """Open a finished featx file, checking its kind when given.

    A file without featx attributes that holds a ``features`` or ``images`` dataset and ``labels``
    (optionally ``label_names``: the book's ``HDF5DatasetWriter`` layout) opens as a *foreign*
    file: one info line on stderr, label names default to the label numbers, no backbone settings.
    """
    return StoreReader(path, kind=kind)


def peek_kind(path: str | os.PathLike) -> str | None:
    """The ``kind`` attr of a featx file, or None when it is not one (no exception)."""
    try:
        with h5py.File(path, "r") as f:
            return _attr(f.attrs.get(ATTR_KIND))
    except OSError:
        return None
