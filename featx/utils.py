"""Small helpers shared across featx: atomic file writes, JSON, timing, file names as text."""

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


def read_record(path: str | os.PathLike, schema: str, what: str) -> dict:
    """A JSON object whose ``schema`` field is ``schema``; one-line errors otherwise.

    ``what`` names the record in the messages (``"metrics file"``, ``"inspect record"``...).
    """
    from featx.errors import FeatxError

    try:
        record = read_json(path)
    except (OSError, ValueError) as e:
        raise FeatxError(f"cannot read {what} {path}: {e}") from None
    if not isinstance(record, dict) or record.get("schema") != schema:
        raise FeatxError(f"{path} is not a featx {what} (schema {schema})")
    return record


def summarize_skips(skipped: list[dict]) -> str:
    """``"skipped 3 files (2 undecodable image, 1 empty file)"``: counts per reason, details dropped."""
    reasons: dict[str, int] = {}
    for item in skipped:
        key = item["reason"].split(" (")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return f"skipped {len(skipped)} files (" + ", ".join(f"{v} {k}" for k, v in reasons.items()) + ")"


# ------------------------------------------------------------------------------ file names as text
#: Linux file names are bytes. Python gives the bytes that are not valid UTF-8 as the lone
#: surrogates U+DC80..U+DCFF (``surrogateescape``). Text featx writes (the ``paths`` of an HDF5
#: store, predict's CSV and table) carries such a name in the *escaped form*: each such byte as
#: ``\xHH`` (two lowercase hex digits) and each backslash doubled; everything else unchanged.
#: :func:`unescape_name` turns it back into the same name, so the same bytes, exactly.
BACKSLASH = "\\"


def _surrogate_byte(ch: str) -> int | None:
    o = ord(ch)
    return o - 0xDC00 if 0xDC80 <= o <= 0xDCFF else None


def _is_surrogate(ch: str) -> bool:
    return 0xD800 <= ord(ch) <= 0xDFFF


def escape_name(name: str) -> str:
    r"""A file name (``os.fsdecode`` form) as valid UTF-8 text that :func:`unescape_name` inverts.

    ``os.fsdecode(b"bad\xff.jpg")`` -> ``bad\xff.jpg`` (8 + 3 characters), ``a\b`` -> ``a\\b``.
    """
    if BACKSLASH not in name and name.isascii():
        return name
    out = []
    for ch in name:
        b = _surrogate_byte(ch)
        if b is not None:
            out.append(f"\\x{b:02x}")
        elif ch == BACKSLASH:
            out.append(BACKSLASH * 2)
        elif _is_surrogate(ch):  # a lone surrogate that is no undecodable byte (not from a file system)
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def unescape_name(text: str) -> str:
    """The file name whose :func:`escape_name` is ``text`` (other backslash sequences are kept as they are)."""
    if BACKSLASH not in text:
        return text
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == BACKSLASH and i + 1 < n:
            nxt = text[i + 1]
            if nxt == BACKSLASH:
                out.append(BACKSLASH)
                i += 2
                continue
            want = {"x": 2, "u": 4}.get(nxt, 0)
            digits = text[i + 2 : i + 2 + want]
            if want and len(digits) == want and all(c in "0123456789abcdef" for c in digits):
                v = int(digits, 16)
                out.append(chr(0xDC00 + v) if nxt == "x" and v >= 0x80 else chr(v))
                i += 2 + want
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def printable_name(name: str) -> str:
    r"""``name`` with only its undecodable bytes written ``\xHH``: valid UTF-8 for labels and messages.

    Not inverted (a backslash stays single): use :func:`escape_name` where the bytes must come back.
    """
    if name.isascii() or not any(map(_is_surrogate, name)):
        return name
    return "".join(
        f"\\x{b:02x}" if (b := _surrogate_byte(c)) is not None else (f"\\u{ord(c):04x}" if _is_surrogate(c) else c)
        for c in name
    )
