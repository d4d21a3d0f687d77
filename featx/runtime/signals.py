"""One signal policy for every command: SIGTERM and SIGINT stop a run the same way.

* :func:`install` (called by the ``featx`` entry point) makes SIGTERM raise :class:`Terminated`, a
  ``KeyboardInterrupt``: the code unwinds as on Ctrl-C (context managers close the HDF5 writers,
  which flush their progress records; process pools are terminated), and the CLI prints one line
  and exits 143 (130 for SIGINT). The partial state is kept: the same command resumes.
* :func:`quiet_worker` (a pool initializer) makes a worker process ignore SIGINT (Ctrl-C reaches the
  whole process group: the parent decides) and die with its parent (``PR_SET_PDEATHSIG`` on Linux),
  so no worker prints a ``KeyboardInterrupt`` or ``BrokenPipeError`` traceback.
"""

from __future__ import annotations

import signal

#: exit status of a command stopped by a signal: 128 + the signal number, as a shell reports it
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind like Ctrl-C, exit :data:`EXIT_SIGTERM`."""

    signal_name = "SIGTERM"
    exit_code = EXIT_SIGTERM


def _raise_terminated(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the clean-up
    raise Terminated()


def install() -> None:
    """SIGTERM raises :class:`Terminated` in the main thread (nothing to do off the main thread)."""
    try:
        signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # pragma: no cover - not the main thread (embedded use)
        pass


def exit_code(e: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return getattr(e, "exit_code", EXIT_SIGINT)


def quiet_worker() -> None:
    """In a worker process: ignore SIGINT, default SIGTERM (die silently), die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import ctypes

    from featx.runtime.libc import libc_function

    prctl = libc_function("prctl", [ctypes.c_int, ctypes.c_ulong])
    if prctl is not None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the parent dies (SIGKILL included)
