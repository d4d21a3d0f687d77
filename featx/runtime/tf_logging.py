"""Keep TensorFlow's C++ start-up lines off the terminal (``featx --verbose`` shows them).

TensorFlow 2.21 logs through Abseil, and Abseil writes everything logged before
``absl::InitializeLog()`` straight to file descriptor 2, whatever ``TF_CPP_MIN_LOG_LEVEL`` says
(abseil/abseil-cpp#1718, #1957: a threshold is ignored until logging is initialized). So:

* ``TF_CPP_MIN_LOG_LEVEL=3`` is set before the first TensorFlow import (unless the user set it),
  which silences what TensorFlow logs after start-up (``cuInit`` failures on a CPU machine,
  ``cpu_feature_guard``);
* during ``import tensorflow`` only, fd 2 goes to a temporary file; afterwards the Abseil lines
  (``WARNING: All log messages before absl::InitializeLog() ...``, ``I0000 ... port.cc``,
  ``cudart_stub.cc``, ``cpu_feature_guard.cc`` and the like) are dropped and every other line is
  written to the real stderr, so nothing else is lost.

:func:`quiet` installs this as an import hook (the CLI does it on start-up; TensorFlow is still
imported only by commands that run a model); :func:`verbose` undoes it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

#: Lines dropped from stderr while TensorFlow is imported.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-/]+:\d+\] "
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)"
)

_state = {"set_level": False}


@contextlib.contextmanager
def filtered_stderr(drop=NOISE.match):
    """Send fd 2 to a temporary file for the block, then copy back the lines ``drop`` rejects."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):  # pragma: no cover - closed or replaced stderr
        pass
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no fd 2 at all
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError, OSError):  # pragma: no cover
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not drop(line))
            if kept:
                os.write(2, kept.encode("utf-8"))


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` inside :func:`filtered_stderr`."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        try:
            with filtered_stderr():
                self._inner.exec_module(module)
        finally:  # the module keeps its real loader
            module.__loader__ = self._inner
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._inner


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Intercepts the first ``import tensorflow`` (direct, or through ``keras``) and then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        _uninstall()
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietFinder)]


def quiet() -> None:
    """Silence TensorFlow's start-up lines in this process (call before TensorFlow is imported)."""
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        _state["set_level"] = True
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())


def verbose() -> None:
    """Undo :func:`quiet`: TensorFlow logs what it logs (the level it would use by default)."""
    _uninstall()
    if _state["set_level"]:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        _state["set_level"] = False
