"""One signal policy for every command (featx.runtime.signals): SIGTERM -> one line, exit 143;
Ctrl-C (SIGINT to the process group) -> one line, exit 130; decode pool workers print nothing;
the partial state is kept and the same command resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from featx.store import open_store
from tests.conftest import color_image, save

#: featx's CLI in a child process, each decode slowed down so the signal lands mid-build
CHILD = textwrap.dedent(
    """
    import itertools, sys, time
    import featx.data.decode as decode
    real = decode.read_rgb  # every decoding path (build's slabs, extract's readers) reads through it
    calls = itertools.count()
    def slow(*a, **k):
        # past the first 64-row slab, slower still: the run cannot end before the signal lands
        time.sleep(0.05 if next(calls) < 64 else 0.3)
        return real(*a, **k)
    decode.read_rgb = slow
    from featx.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    import numpy as np

    root = tmp_path_factory.mktemp("sig") / "photos"
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        for i in range(60):
            save(color_image(rng, w=12, h=10, tint=c), root / name / f"{name}{i:02d}.png")
    return root


def _interrupt(args: list, sig: int, partial: Path, *, group: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    p = subprocess.Popen([sys.executable, "-c", CHILD, *map(str, args)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while not partial.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a few slabs into the work
    if group:
        os.killpg(p.pid, sig)  # Ctrl-C in a terminal: the whole process group, pool workers included
    else:
        p.send_signal(sig)  # kill -TERM PID: the main process only
    out, err = p.communicate(timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, group", [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, True)])
def test_signal_ends_build_with_one_line_and_rerun_resumes(photos, tmp_path, sig, code, group):
    out = tmp_path / "data"
    args = ["build", photos, "-o", out, "--size", 8, "--val", 0, "--test", 0, "-j", 2, "--no-progress"]
    r = _interrupt(args, sig, out / "train.h5.partial", group=group)
    assert r.returncode == code, (r.returncode, r.stderr[-3000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "what was written is kept; rerun the same command to resume" in lines[0], r.stderr
    assert lines[0].startswith("terminated (SIGTERM)" if sig == signal.SIGTERM else "interrupted")
    assert (out / "train.h5.partial").exists() and not (out / "train.h5").exists()  # kept for resume
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    again = subprocess.run([sys.executable, "-c", "import sys; from featx.cli import main; sys.exit(main(sys.argv[1:]))",
                            *map(str, args)], capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    with open_store(out / "train.h5") as s:
        assert len(s) == 120 and len(set(s.paths)) == 120


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_quiet_worker_asks_the_kernel_for_sigterm_when_the_parent_dies():
    code = (
        "import ctypes, signal\n"
        "from featx.runtime.signals import quiet_worker\n"
        "from featx.runtime.libc import libc_function\n"
        "assert libc_function('no_such_function_in_libc', []) is None\n"
        "quiet_worker()\n"
        "sig = ctypes.c_int()\n"
        "libc_function('prctl', [ctypes.c_int, ctypes.POINTER(ctypes.c_int)])(2, ctypes.byref(sig))  # PR_GET_PDEATHSIG\n"
        "print(sig.value, signal.getsignal(signal.SIGINT) is signal.SIG_IGN)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(int(signal.SIGTERM)), "True"]
