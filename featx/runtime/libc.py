"""The C library's functions featx calls through ``ctypes`` (Linux / glibc): looked up in one place.

``prctl`` (workers die with their parent: :mod:`featx.runtime.signals`), ``sync_file_range``
(slab write-out started early: :mod:`featx.store.writer`) and ``mallopt`` (freed blocks returned to
the OS during the out-of-core fit: :mod:`featx.fit.sgd`). Elsewhere :func:`libc_function` gives
``None`` and the caller does without.
"""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)  # the C library this process already runs on
    except OSError:  # pragma: no cover - a static or unusual build
        return None


def libc_function(name: str, argtypes: list, restype=ctypes.c_int):
    """The C library's function ``name`` with its signature set, or ``None`` where there is none."""
    lib = _libc()
    if lib is None:
        return None
    try:
        fn = lib[name]  # a fresh function object (attribute access would share one per name)
    except AttributeError:
        return None
    fn.argtypes, fn.restype = argtypes, restype
    return fn
