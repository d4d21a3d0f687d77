"""Output safety shared by every command that writes: one run per output, inputs never replaced,
``--overwrite`` only replaces what featx wrote, and writability checked before long work.

* :func:`output_lock`: a non-blocking lock (the ``filelock`` library, an OS ``flock``) on a sidecar
  ``<path>.lock``. A second run on the same output fails at once with one line naming the holder's
  pid and host; it never deletes or renames the holder's files. The OS releases the lock when the
  holding process dies (SIGKILL included), so a dead holder never blocks a rerun: the sidecar file
  that stays behind is harmless.
* :func:`check_not_input`: an output that resolves to one of the command's inputs is refused.
* :func:`check_overwritable`: an existing output that featx did not write is refused (with or
  without ``--overwrite``).
* :func:`check_writable`: creates and removes a temporary file where the output goes (creating no
  folder), so a read-only folder fails before minutes of work, not after.
* :func:`write_error`: the one-line message for an ``OSError`` while writing (disk full ...).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno as _errno
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from featx.errors import FeatxError

LOCK_SUFFIX = ".lock"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class OutputLockedError(FeatxError):
    """Another featx run holds the lock on this output."""


class OutputWriteError(FeatxError, OSError):
    """An OS error (disk full, permissions, ...) while writing an output: one line, and still an
    ``OSError`` (with its ``errno``) for callers that catch those."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


# ---------------------------------------------------------------------------------------- locks
def lock_path(path: str | os.PathLike) -> Path:
    """The sidecar lock file of an output: ``clf.pkl`` -> ``clf.pkl.lock``, ``runs/mini`` -> ``runs/mini.lock``."""
    p = Path(os.path.abspath(os.fspath(path)))
    return p.with_name(p.name + LOCK_SUFFIX)


def _holder_record() -> bytes:
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
    }
    return (json.dumps(info) + "\n").encode()


def _write_holder(fd: int) -> None:
    """Record who holds the lock inside the locked file (only the holder ever writes it)."""
    data = _holder_record()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def read_holder(path: str | os.PathLike) -> dict:
    """Who holds (or last held) the lock of output ``path``: ``{"pid", "host", ...}`` or ``{}``."""
    lp = lock_path(path)
    # The holder writes its record right after it takes the lock: give it a moment.
    for _ in range(20):
        try:
            info = json.loads(lp.read_text() or "null")
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict) and "pid" in info:
            return info
        time.sleep(0.025)
    return {}


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of output ``path`` (a file or a folder) for the duration of the block.

    Non-blocking: when another run holds it, raises :class:`OutputLockedError` at once, naming
    that run's pid and host. Not re-entrant: a second lock on the same output is refused even in
    the same process (each call opens its own descriptor), so take it once, at the top of a command.
    """
    import filelock

    lp = lock_path(path)
    try:
        lp.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(lp.parent, e) from None
    lock = filelock.UnixFileLock(
        lp, blocking=False, thread_local=False, fallback_to_soft=False, on_acquired=_write_holder,
    )
    try:
        lock.acquire()
    except filelock.Timeout:
        info = read_holder(path)
        who = (
            f"pid {info['pid']} on host {info.get('host', '?')}, started {info.get('started', '?')}"
            if info else "another process"
        )
        raise OutputLockedError(
            f"{path} is in use by another featx run ({who}); wait for it to finish or stop it, or choose another output"
        ) from None
    except OSError as e:
        raise write_error(lp, e, what="cannot lock") from None
    try:
        yield lp
    finally:
        lock.release()


# ---------------------------------------------------------------------------------------- input = output
def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def check_not_input(out: str | os.PathLike, *inputs: str | os.PathLike | None, contains: bool = False) -> None:
    """Refuse an output that is one of the inputs (paths are resolved: symlinks, ``..``, hard links).

    With ``contains=True`` (an output folder that featx may empty, e.g. a train run folder) an input
    inside the output folder is refused too.
    """
    o = Path(out).resolve()
    for inp in inputs:
        if inp is None:
            continue
        i = Path(inp).resolve()
        if _same(o, i):
            raise FeatxError(f"the output {out} is the input {inp}; choose another output path")
        if contains and o in i.parents:
            raise FeatxError(f"the input {inp} is inside the output folder {out}; choose another output folder")


# ---------------------------------------------------------------------------------------- overwrite
def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _is_hdf5(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == _HDF5_SIGNATURE
    except OSError:
        return False


def _featx_h5(path: Path) -> bool:
    if not _is_hdf5(path):
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "featx_version" in f.attrs and "kind" in f.attrs
    except (OSError, KeyError):
        return False


def _featx_json(obj) -> bool:
    if not isinstance(obj, dict):
        return False
    if "featx_version" in obj or str(obj.get("schema", "")).startswith("featx."):
        return True
    if "source_key" in obj and "next_index" in obj:  # a StoreWriter progress record
        return True
    return set(obj) == {"R", "G", "B"}  # mean.json


def _featx_classifier(path: Path) -> bool:
    """A classifier its featx manifest vouches for: ``clf.manifest.json``, or the partial manifest
    of an export killed before its manifest was renamed into place (featx's own unfinished unit)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    manifests = [_json(path.with_name(stem + ".manifest.json" + end)) for end in ("", ".partial")]
    manifests = [m for m in manifests if isinstance(m, dict) and m.get("file") == path.name and "sha256" in m]
    if not manifests:
        return False
    import hashlib

    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return False
    return any(h.hexdigest() == m["sha256"] for m in manifests)


def _named_by_featx_json(path: Path) -> bool:
    """A ``featx convert`` NumPy output (``STEM.npy``, ``STEM.labels.csv``) named by its ``STEM.featx.json``."""
    for suffix in (".npy", ".labels.csv"):
        if path.name.endswith(suffix):
            meta = _json(path.with_name(path.name[: -len(suffix)] + ".featx.json"))
            return _featx_json(meta) and path.name in (meta.get("files") or [])
    return False


def _featx_parquet(path: Path) -> bool:
    """A Parquet file whose schema metadata carries featx's key (``featx convert`` wrote it)."""
    try:
        import pyarrow.parquet as pq

        return b"featx" in (pq.read_schema(path).metadata or {})
    except Exception:  # noqa: BLE001 - not Parquet, or pyarrow missing: not ours
        return False


def is_featx_output(path: str | os.PathLike) -> bool:
    """True when ``path`` was written by featx (so ``--overwrite`` may replace it).

    Recognised: HDF5 files with featx attrs; ``.partial`` files of a featx writer (featx attrs, or
    the progress record beside them); featx JSON (``featx_version`` / ``featx.*`` schema, progress
    records, ``mean.json``); a classifier whose featx manifest (or the partial manifest of an
    unfinished export) names it with a matching sha256;
    ``featx convert`` outputs (Parquet with featx schema metadata, ``.npy``/``.labels.csv`` named by
    their ``.featx.json``);
    folders holding a featx ``config.json`` (train run), ``build.json``, ``report.json`` or
    ``export.json`` (export folder), or empty.
    """
    p = Path(path)
    if p.is_symlink() or not p.exists():
        return False
    if p.is_dir():
        try:
            if not any(p.iterdir()):
                return True
        except OSError:
            return False
        return any(_featx_json(_json(p / name)) for name in ("config.json", "build.json", "report.json", "export.json"))
    if not p.is_file():
        return False
    if p.name.endswith(".partial"):
        if _featx_h5(p):
            return True
        return _featx_json(_json(p.with_name(p.name + ".json")))
    if _is_hdf5(p):
        return _featx_h5(p)
    if p.suffix.lower() == ".json":
        return _featx_json(_json(p))
    if p.suffix.lower() in (".parquet", ".pq"):
        return _featx_parquet(p)
    if _named_by_featx_json(p):
        return True
    return _featx_classifier(p)


def check_overwritable(path: str | os.PathLike) -> None:
    """Refuse to replace an existing ``path`` that featx did not write (nothing to do when it is absent)."""
    p = Path(path)
    if not os.path.lexists(p):
        return
    if not is_featx_output(p):
        what = "folder" if p.is_dir() else "file"
        raise FeatxError(
            f"{path} exists and is not a {what} featx wrote; featx will not replace it, even with --overwrite: "
            "move it away or choose another output"
        )


# ---------------------------------------------------------------------------------------- writability
def _existing_parent(p: Path) -> Path:
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Fail now, in one line, when output ``path`` (a file, or a folder with ``folder=True``) cannot be written.

    Creates and removes a temporary file in the folder that will hold it or, when that folder does
    not exist yet, in its nearest existing parent (where the run will create it): this is the real
    test (permissions, read-only mounts, a parent that is a file, a full inode table), not
    ``os.access``. Nothing is left behind: a run refused after this check leaves no empty folder.
    """
    p = Path(path)
    target = p if folder else p.parent
    if os.path.lexists(p) and not folder and p.is_dir():
        raise FeatxError(f"cannot write {path}: it is a folder")
    base = _existing_parent(target)
    if not base.is_dir():
        raise FeatxError(f"cannot write {path}: {base} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".featx-write-test-", dir=base)
    except OSError as e:
        raise write_error(p, e) from None
    os.close(fd)
    os.unlink(tmp)
    if os.path.lexists(p) and not folder and not os.access(p, os.W_OK) and os.geteuid() != 0:
        raise FeatxError(f"cannot write {path}: [Errno {_errno.EACCES}] {os.strerror(_errno.EACCES)}")


# ---------------------------------------------------------------------------------------- OS errors
def write_error(path: str | os.PathLike, e: BaseException, *, what: str = "cannot write") -> OutputWriteError:
    """``cannot write data/train.h5.partial: [Errno 28] No space left on device`` as one exception.

    ``e`` is an ``OSError`` (or h5py's ``RuntimeError``, whose message carries ``errno = N``).
    """
    if isinstance(e, OutputWriteError):
        return e
    no = getattr(e, "errno", None)
    if no is None:  # h5py: "... (file write failed: ..., errno = 28, error message = 'No space left on device', ...)"
        m = re.search(r"errno = (\d+)", str(e))
        no = int(m.group(1)) if m else None
    # h5py puts libhdf5's whole multi-line report in strerror: the errno's own text is the news
    reason = os.strerror(no) if no else (getattr(e, "strerror", None) or str(e)).split("\n")[0]
    code = f"[Errno {no}] " if no else ""
    err = OutputWriteError(f"{what} {path}: {code}{reason}")
    err.errno, err.strerror, err.filename = no, reason, os.fspath(path)
    return err
