"""Small helpers shared across featx: atomic file writes, JSON, timing."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def to_json(obj, indent: int | None = 2) -> str:
    return json.dumps(obj, indent=indent, default=_default, sort_keys=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or the whole new one.

    An ``OSError`` (disk full ...) becomes one :class:`~featx.outputs.OutputWriteError` naming
    ``path`` and the errno; the temporary file is removed and ``path`` is left as it was.
    """
    from featx.outputs import write_error

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # disk full, quota...: one line naming the file; the old file is intact
            raise write_error(path, e) from None
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, to_json(obj) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def summarize_skips(skipped: list[dict]) -> str:
    """``"skipped 3 files (2 undecodable image, 1 empty file)"``: counts per reason, details dropped."""
    reasons: dict[str, int] = {}
    for item in skipped:
        key = item["reason"].split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return f"skipped {len(skipped)} files (" + ", ".join(f"{v} {k}" for k, v in reasons.items()) + ")"
