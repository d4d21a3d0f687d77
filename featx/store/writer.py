"""The one HDF5 writer both paths share: images from ``featx build``, features from ``featx extract``.

Design (see ``README.md``, "The HDF5 store"):

* The caller names every source row up front (``paths``, ``labels``, ``label_names``) and feeds rows
  in source order with :meth:`StoreWriter.add`; a source that cannot be used is reported with
  :meth:`StoreWriter.skip`. Written rows are the sources minus the skipped ones, in order.
* Rows are buffered and written in large contiguous slabs into ``NAME.h5.partial``. Its main
  dataset is created at its largest possible size with *early allocation* and no fill, so writing a
  slab changes raw bytes only, never HDF5 metadata: a process killed at any moment (SIGKILL
  included) leaves a structurally sound file.
* After each slab is flushed, a progress record ``NAME.h5.partial.json`` is replaced atomically. It
  names the next source index, the rows written, the skips so far and exact integer channel sums.
  Rerunning the same command resumes from there and ends with the same content as an
  uninterrupted run.
* :meth:`StoreWriter.finish` shrinks the dataset to the rows written, adds ``labels``,
  ``label_names``, ``paths`` and the attrs, marks ``complete`` and renames the file to ``NAME.h5``.
  A file at the final path is always whole.
* An OS error while writing (disk full, quota, I/O) closes the HDF5 file at once, deterministically
  (HDF5 runs without a chunk cache, so a failed write leaves no dirty chunk for a later close to
  trip over), and raises one :class:`~featx.outputs.OutputWriteError` naming the file and errno.
  The partial and its progress record stay: a rerun with space resumes from the last slab.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import warnings as _warnings
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from featx import __version__
from featx.errors import FeatxError, OutputExistsError
from featx.outputs import check_overwritable, write_error
from featx.store.format import (
    ATTR_COMPLETE,
    ATTR_CONFIG,
    ATTR_CREATED,
    ATTR_KIND,
    ATTR_PATHS_ESCAPED,
    ATTR_SOURCE_KEY,
    ATTR_VERSION,
    DATASET_FOR_KIND,
    STR_DTYPE,
)
from featx.utils import atomic_write_json, escape_name, printable_name

#: Target size of one slab write (bytes); the row count is derived from the row size.
SLAB_BYTES = 64 * 1024 * 1024
#: Target size of one HDF5 chunk (bytes).
CHUNK_BYTES = 1024 * 1024
#: HDF5 errors (h5py raises OSError from writes, RuntimeError from some flushes and closes).
_H5_ERRORS = (OSError, RuntimeError)


def _h5_open(path: Path, mode: str) -> h5py.File:
    # No chunk cache: slabs are written straight through, and a write that fails (disk full) leaves
    # no dirty chunk behind whose later eviction would fail inside libhdf5 (that crashed, exit 139).
    # Not libver="latest": its superblock v3 marks the file "open for write", and after a SIGKILL
    # HDF5 refuses to reopen it ("may use h5clear"), so the run would silently start over.
    return h5py.File(path, mode, libver=("earliest", "v108"), rdcc_nbytes=0)


def source_key(paths: Sequence[str], labels: Sequence[int], label_names: Sequence[str], config: dict) -> str:
    """A fingerprint of what a run will write: sources, labels and the content-defining config."""
    h = hashlib.sha256()
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(json.dumps(list(label_names)).encode())
    h.update(np.asarray(labels, dtype=np.int64).tobytes())
    for p in paths:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


class StoreWriter:
    """Write one featx HDF5 file (images or features), resumably and atomically.

    Parameters
    ----------
    path : final path of the file (``NAME.h5``).
    kind : ``"images"`` or ``"features"``.
    row_shape, dtype : shape and dtype of one row (``(H, W, 3)``/uint8 or ``(D,)``/float32).
    paths, labels, label_names : every source row, in order (``labels`` index ``label_names``).
    config : JSON-able parameters that define the content; stored as the ``config`` attr and
        compared on resume.
    attrs : extra attrs to store (e.g. ``backbone``).
    overwrite : replace a finished file or a partial run made with other parameters.
    compute_mean : accumulate exact per-channel sums and store ``mean_rgb`` (images only).
    slab_rows : rows per slab write (default: about 64 MiB).

    After construction, :attr:`done` is true when the final file already exists with the same
    content definition (nothing to do), and :attr:`next_index` is the first source to feed.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        kind: str,
        row_shape: Sequence[int],
        dtype,
        paths: Sequence[str],
        labels: Sequence[int],
        label_names: Sequence[str],
        config: dict,
        attrs: dict | None = None,
        overwrite: bool = False,
        compute_mean: bool = False,
        slab_rows: int | None = None,
    ):
        if kind not in DATASET_FOR_KIND:
            raise ValueError(f"kind must be one of {sorted(DATASET_FOR_KIND)}. Received: kind={kind!r}")
        if len(paths) != len(labels):
            raise ValueError(f"paths and labels differ in length: {len(paths)} != {len(labels)}")
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self.progress_path = self.path.with_name(self.path.name + ".partial.json")
        self.kind = kind
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.label_names = [printable_name(str(n)) for n in label_names]  # HDF5 strings are UTF-8
        self.config = json.loads(json.dumps(config, default=str))
        self.attrs = dict(attrs or {})
        self.compute_mean = compute_mean
        self.n_sources = len(self.paths)
        row_bytes = max(1, int(np.prod(self.row_shape)) * self.dtype.itemsize)
        self.slab_rows = int(slab_rows or max(1, SLAB_BYTES // row_bytes))
        self.chunk_rows = int(max(1, min(self.slab_rows, CHUNK_BYTES // row_bytes, max(self.n_sources, 1))))
        self.key = source_key(self.paths, self.labels, self.label_names, self.config)

        self.done = False
        self.resumed_from = 0  # first source index of this run when it resumed an unfinished one
        self._file: h5py.File | None = None
        self._buf: list[np.ndarray] = []
        self._buf_rows = 0
        self._buf_sums: list[int] | None = None  # channel sums of _buf given by write_slab
        self._pending_skips: list[dict] = []
        self._pending_next = 0
        self._prepare(overwrite)

    # ------------------------------------------------------------------ set-up and resume
    def _prepare(self, overwrite: bool) -> None:
        if os.path.lexists(self.path):
            if not overwrite and _read_key(self.path) == self.key:
                self.done = True
                return
            check_overwritable(self.path)  # a file featx did not write is never replaced
            if not overwrite:
                raise OutputExistsError(
                    f"{self.path} exists and was made with different parameters or sources; "
                    "pass --overwrite to replace it"
                )
        if self.partial_path.exists() or self.progress_path.exists():
            progress = _read_json(self.progress_path)
            if progress is not None and progress.get("source_key") != self.key and not overwrite:
                raise OutputExistsError(
                    f"{self.partial_path} is an unfinished run with different parameters or sources; "
                    "rerun it with the same options to resume, or pass --overwrite to start over"
                )
            if progress is not None and progress.get("source_key") == self.key and not overwrite:
                if self._open_partial(progress):
                    self.progress = progress
                    self._pending_next = self.resumed_from = progress["next_index"]
                    return
                _warnings.warn(
                    f"{self.partial_path} could not be reopened; starting {self.path.name} over", stacklevel=3
                )
            # A partial file without a usable progress record (or opted out): start over.
            if os.path.lexists(self.partial_path):
                check_overwritable(self.partial_path)
            self._remove_partial()
        self._create_partial()

    def _open_partial(self, progress: dict) -> bool:
        try:
            self._file = _h5_open(self.partial_path, "r+")
            shape = self._file[DATASET_FOR_KIND[self.kind]].shape
            # a run stopped inside finish() may have trimmed the dataset to the rows written already
            feeding = progress.get("next_index", 0) < self.n_sources
            if shape[1:] != self.row_shape or shape[0] < (self.n_sources if feeding else progress.get("rows", 0)):
                raise OSError("shape mismatch")
            return True
        except (OSError, KeyError, RuntimeError):
            if self._file is not None:
                try:
                    self._file.close()
                except Exception:  # pragma: no cover - a broken file
                    pass
            self._file = None
            return False

    def _create_partial(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if os.path.lexists(self.path):
                self.path.unlink()  # overwrite: the old final file goes only once we start anew
        except OSError as e:
            raise write_error(self.path, e) from None
        try:
            self._file = _h5_open(self.partial_path, "w")
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
            dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
            self._file.create_dataset(
                DATASET_FOR_KIND[self.kind],
                shape=(max(self.n_sources, 1), *self.row_shape),
                maxshape=(None, *self.row_shape),
                chunks=(self.chunk_rows, *self.row_shape),
                dtype=self.dtype,
                dcpl=dcpl,
                track_times=False,
            )
            # marks the partial as featx's (so --overwrite may replace it); the rest comes in finish()
            self._file.attrs[ATTR_VERSION] = __version__
            self._file.attrs[ATTR_KIND] = self.kind
            self._file.flush()
        except _H5_ERRORS as e:
            raise self._failed(e) from None
        self.progress = {
            "source_key": self.key,
            "next_index": 0,
            "rows": 0,
            "skipped": [],
            "channel_sums": None,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        atomic_write_json(self.progress_path, self.progress)

    def _failed(self, e: BaseException, path: Path | None = None) -> FeatxError:
        """Close the HDF5 file after an OS error and return the one-line error to raise.

        The partial file and its progress record are kept, so a rerun (with space) resumes.
        """
        f, self._file = self._file, None
        self._buf, self._buf_rows, self._buf_sums = [], 0, None
        if f is not None:
            try:
                f.close()
            except _H5_ERRORS:
                pass
        return write_error(path or self.partial_path, e)

    def _remove_partial(self) -> None:
        for p in (self.partial_path, self.progress_path):
            if p.exists():
                p.unlink()

    # ------------------------------------------------------------------ feeding rows
    @property
    def next_index(self) -> int:
        """The first source index still to feed (0 for a new run, later when resuming)."""
        return self.n_sources if self.done else self._pending_next

    def _check_index(self, index: int) -> None:
        if index != self._pending_next:
            raise ValueError(f"sources must be fed in order: expected index {self._pending_next}, got {index}")
        self._pending_next += 1

    def add(self, index: int, row: np.ndarray) -> None:
        """Add the row of source ``index`` (sources are fed in order)."""
        self.add_batch(index, np.asarray(row)[None])

    def add_batch(self, start: int, rows: np.ndarray) -> None:
        """Add rows for the consecutive sources ``start, start+1, ...``."""
        rows = np.asarray(rows)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"row shape {rows.shape[1:]} does not match the store's {self.row_shape}")
        if start != self._pending_next:
            raise ValueError(f"sources must be fed in order: expected index {self._pending_next}, got {start}")
        self._pending_next += len(rows)
        self._buf.append(rows.astype(self.dtype, copy=False))
        self._buf_rows += len(rows)
        if self._buf_rows >= self.slab_rows:
            self.flush()

    def write_slab(self, start: int, n_sources: int, rows: np.ndarray, skips: Sequence[tuple[int, str]] = (),
                   channel_sums: Sequence[int] | None = None) -> None:
        """Sources ``start .. start+n_sources-1`` at once: ``rows`` are the images of those not in
        ``skips`` (``[(index, reason)]``), in order. They are written as one slab and the progress
        is recorded before this returns; ``rows`` is not kept (the caller may reuse its buffer).
        ``channel_sums``: their exact per-channel sums when the caller has them (else computed)."""
        rows = np.asarray(rows)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"row shape {rows.shape[1:]} does not match the store's {self.row_shape}")
        if start != self._pending_next:
            raise ValueError(f"sources must be fed in order: expected index {self._pending_next}, got {start}")
        if len(rows) + len(skips) != n_sources or any(not start <= i < start + n_sources for i, _ in skips):
            raise ValueError(f"{len(rows)} rows and {len(skips)} skips do not make sources {start}..{start + n_sources - 1}")
        self.flush()  # rows fed by add() come first
        self._pending_next = start + n_sources
        self._pending_skips.extend({"index": int(i), "path": self.paths[i], "reason": r} for i, r in skips)
        if len(rows):
            self._buf, self._buf_rows = [rows.astype(self.dtype, copy=False)], len(rows)
            self._buf_sums = None if channel_sums is None else [int(v) for v in channel_sums]
        self.flush()

    def skip(self, index: int, reason: str) -> None:
        """Record that source ``index`` gives no row, and why."""
        self._check_index(index)
        self._pending_skips.append({"index": index, "path": self.paths[index], "reason": reason})

    def flush(self) -> None:
        """Write buffered rows as one slab, then durably record progress."""
        if self.done or self._file is None:
            return
        progress_before = json.dumps(self.progress)
        try:
            self._flush()
        except _H5_ERRORS as e:
            self.progress = json.loads(progress_before)  # what is on disk
            raise self._failed(e) from None

    def _flush(self) -> None:
        if self._buf:
            slab = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
            start = self.progress["rows"]
            self._file[DATASET_FOR_KIND[self.kind]][start : start + len(slab)] = slab
            if self.compute_mean:
                sums = self._buf_sums
                if sums is None:
                    # sum contiguous image rows first (10x faster than a strided (-1, C) reduction)
                    row = int(np.prod(slab.shape[-2:]))
                    sums = slab.reshape(-1, row).sum(axis=0, dtype=np.uint64).reshape(-1, slab.shape[-1]).sum(axis=0).tolist()
                prev = self.progress["channel_sums"] or [0] * len(sums)
                self.progress["channel_sums"] = [int(a) + int(b) for a, b in zip(prev, sums)]
            self.progress["rows"] = start + len(slab)
            self._buf, self._buf_rows, self._buf_sums = [], 0, None
        elif not self._pending_skips and self._pending_next == self.progress["next_index"]:
            return
        self._file.flush()
        _start_writeback(self._file)
        self.progress["skipped"].extend(self._pending_skips)
        self._pending_skips = []
        self.progress["next_index"] = self._pending_next
        atomic_write_json(self.progress_path, self.progress)

    # ------------------------------------------------------------------ finishing
    def finish(self, attrs: dict | None = None, *, allow_empty: bool = False) -> Path:
        """Complete the file: metadata, ``complete`` flag, atomic rename. Returns the final path.

        A file with no rows (every source skipped) is an error unless ``allow_empty`` (a shard of a
        larger run may legitimately hold only skipped sources).
        """
        if self.done:
            return self.path
        if self._pending_next != self.n_sources:
            raise ValueError(f"finish() called after {self._pending_next} of {self.n_sources} sources")
        self.flush()
        f = self._file
        n = self.progress["rows"]
        if n == 0 and not allow_empty:
            self.close()
            self._remove_partial()
            raise FeatxError(f"no usable rows for {self.path.name}: all {self.n_sources} sources were skipped")
        try:
            self._finish(f, n, attrs)
        except _H5_ERRORS as e:
            raise self._failed(e) from None
        try:
            _fsync(self.partial_path)
            os.replace(self.partial_path, self.path)
        except OSError as e:
            raise write_error(self.path, e) from None
        self.progress_path.unlink(missing_ok=True)
        self.done = True
        return self.path

    def _finish(self, f: h5py.File, n: int, attrs: dict | None) -> None:
        skipped = {s["index"] for s in self.progress["skipped"]}
        keep = np.array([i for i in range(self.n_sources) if i not in skipped], dtype=np.int64)
        assert len(keep) == n, (len(keep), n)
        f[DATASET_FOR_KIND[self.kind]].resize(n, axis=0)
        for name in ("labels", "label_names", "paths"):
            if name in f:
                del f[name]
        f.create_dataset("labels", data=self.labels[keep].astype(np.int32))
        f.create_dataset("label_names", data=np.array(self.label_names, dtype=object), dtype=STR_DTYPE)
        # file names that are not valid UTF-8 are stored losslessly, escaped (featx.utils.escape_name)
        f.create_dataset("paths", data=np.array([escape_name(self.paths[i]) for i in keep], dtype=object),
                         dtype=STR_DTYPE)
        all_attrs = {
            ATTR_VERSION: __version__,
            ATTR_KIND: self.kind,
            ATTR_CREATED: self.progress["created"],
            ATTR_CONFIG: json.dumps(self.config, sort_keys=True),
            ATTR_SOURCE_KEY: self.key,
            ATTR_PATHS_ESCAPED: True,
            "n_skipped": len(skipped),
        }
        if self.compute_mean and self.progress["channel_sums"]:
            pixels = n * int(np.prod(self.row_shape[:-1]))
            all_attrs["mean_rgb"] = np.array(self.progress["channel_sums"], dtype=np.float64) / pixels
        all_attrs.update(self.attrs)
        all_attrs.update(attrs or {})
        for k, v in all_attrs.items():
            # a folder name that is not valid UTF-8 (the source attr, say) is shown with \xHH escapes
            f.attrs[k] = json.dumps(v) if isinstance(v, dict | list) else printable_name(v) if isinstance(v, str) else v
        f.attrs[ATTR_COMPLETE] = True
        f.flush()
        f.close()
        self._file = None

    @property
    def skipped(self) -> list[dict]:
        """Sources skipped so far, across resumed runs (empty when the output was already complete)."""
        if self.done and not hasattr(self, "progress"):
            return []
        return list(self.progress["skipped"]) + list(self._pending_skips)

    @property
    def mean_rgb(self) -> list[float] | None:
        p = getattr(self, "progress", None)
        if not p or not p.get("channel_sums") or not p["rows"]:
            return None
        pixels = p["rows"] * int(np.prod(self.row_shape[:-1]))
        return [s / pixels for s in p["channel_sums"]]

    def close(self) -> None:
        """Flush what is buffered and close; an unfinished run stays resumable."""
        if self._file is not None:
            try:
                self.flush()
            finally:
                if self._file is not None:
                    try:
                        self._file.close()
                    except _H5_ERRORS as e:
                        raise self._failed(e) from None
                    self._file = None

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_key(path: Path) -> str | None:
    try:
        with h5py.File(path, "r") as f:
            if not f.attrs.get(ATTR_COMPLETE, False):
                return None
            return _as_str(f.attrs.get(ATTR_SOURCE_KEY))
    except OSError:
        return None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _as_str(v) -> str | None:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


def _libc_sync_file_range():
    """Linux's ``sync_file_range`` from the C library (``None`` where there is none)."""
    import ctypes

    from featx.runtime.libc import libc_function

    return libc_function("sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint])


_SYNC_FILE_RANGE = _libc_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2  # start write-out of the dirty pages, do not wait for it


def _start_writeback(f: h5py.File) -> None:
    """Start writing the file's dirty pages to disk without waiting (``sync_file_range``), so the
    ``fsync`` in :meth:`StoreWriter.finish` waits for the last slab only instead of the whole file
    (100 ms of 1,000 256 px images here). Durability is unchanged: ``finish`` still fsyncs before
    its rename. Does nothing where the call or the file descriptor is not available."""
    if _SYNC_FILE_RANGE is None:
        return
    try:
        fd = f.id.get_vfd_handle()
    except (AttributeError, ValueError, TypeError, RuntimeError, OSError):  # pragma: no cover - another driver
        return
    if isinstance(fd, int) and fd >= 0:
        _SYNC_FILE_RANGE(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)  # a failure only loses the head start


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
