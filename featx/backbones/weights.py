"""Where backbone weights come from: ImageNet (Keras' own download and cache), a local file, or none.

Machines without internet cannot download ImageNet weights; :func:`offline_error` turns Keras'
download failure into one line that says where Keras looked and what to pass instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
import urllib.error
from pathlib import Path

from featx.errors import FeatxError, WeightsUnavailableError

IMAGENET = "imagenet"
NONE = "none"

#: Seed of the random init used for ``weights="none"``: the same spec gives the same features in
#: every run, so smoke runs resume and ``featx predict`` rebuilds the extractor a classifier saw.
RANDOM_SEED = 0


@contextlib.contextmanager
def seeded(seed: int | None):
    """Seed Keras' initializers; Python's and NumPy's global random states are restored after."""
    if seed is None:
        yield
        return
    import random

    import numpy as np

    from featx.runtime.backend import set_random_seed

    py_state, np_state = random.getstate(), np.random.get_state()
    set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def resolve_weights(weights) -> tuple[str, str | None]:
    """``(kind, path)``: kind is ``"imagenet"``, ``"none"`` or ``"file"`` (with an absolute path)."""
    if weights is None:
        return NONE, None
    text = str(weights).strip()
    if text.lower() == IMAGENET:
        return IMAGENET, None
    if text.lower() in (NONE, "random", ""):
        return NONE, None
    path = Path(text).expanduser()
    if not path.is_file():
        raise FeatxError(
            f"weights {text!r} is not 'imagenet', 'none' or an existing file: "
            "pass --weights imagenet, --weights none, or the path of a weights file (.h5 / .weights.h5)"
        )
    return "file", str(path.resolve())


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def keras_cache_dir() -> str:
    """Where Keras caches downloaded weights (``$KERAS_HOME/models`` or ``~/.keras/models``)."""
    try:  # the directory Keras actually uses (it falls back to /tmp when ~ is not writable)
        from keras.src.backend import config

        home = config.keras_home()
    except Exception:  # noqa: BLE001 - private API; the documented default is good enough
        home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    path = os.path.join(home, "models")
    user = os.path.expanduser("~")
    return "~" + path[len(user):] if user != "/" and path.startswith(user + os.sep) else path


def is_download_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) is Keras failing to fetch a file."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, urllib.error.URLError | ConnectionError | TimeoutError | socket.gaierror):
            return True
        if "URL fetch failure" in str(exc):  # keras.utils.get_file wraps network errors this way
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def offline_error(name: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"ImageNet weights for {name} are not in the Keras cache ({keras_cache_dir()}) and cannot be "
        "downloaded (no network): pass --weights /path/to/weights.h5 or --weights none for random "
        "(untrained) features"
    )


class _HeldNotice:
    """A stdout that holds back Keras' "Downloading data from URL" line until the download shows progress.

    When the download fails at once (no network) the line is dropped, so the user sees only
    :func:`offline_error`'s one line; a real download prints the line and its progress bar as usual.
    """

    def __init__(self, stream):
        self.stream = stream
        self.held: list[str] = []
        self.passthrough = False

    def write(self, text: str) -> int:
        if not self.passthrough and not self.held and text.startswith("Downloading data from"):
            self.held.append(text)
            return len(text)
        self.release()
        return self.stream.write(text)

    def release(self) -> None:
        if self.held:
            self.stream.write("".join(self.held))
            self.held = []
        self.passthrough = True

    def flush(self) -> None:
        if self.passthrough:
            self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def quiet_failed_download():
    """Within this block, Keras' download notice is printed only if the download goes ahead."""
    held = _HeldNotice(sys.stdout)
    ok = False
    try:
        with contextlib.redirect_stdout(held):
            yield
        ok = True
    finally:
        if ok:
            held.release()
        else:
            held.held = []
