"""featx.outputs: locks, input = output, --overwrite only over featx files, writability, OS errors."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap

import h5py
import numpy as np
import pytest

from featx.errors import FeatxError
from featx.outputs import (
    OutputLockedError,
    check_not_input,
    check_overwritable,
    check_writable,
    is_featx_output,
    lock_path,
    output_lock,
    write_error,
)

HOLDER = textwrap.dedent(
    """
    import sys, time
    from featx.outputs import output_lock
    with output_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
    """
)


def _hold(path):
    """A child process that takes the lock on ``path`` and sleeps; returns once it holds it."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_lock_refuses_second_run_naming_pid_and_host_and_survives_sigkill(tmp_path):
    out = tmp_path / "feats.h5"
    out.write_bytes(b"the holder's bytes")
    holder = _hold(out)
    try:
        with pytest.raises(OutputLockedError) as ei:
            with output_lock(out):
                pytest.fail("the lock was taken twice")
        msg = str(ei.value)
        assert "\n" not in msg
        assert f"pid {holder.pid}" in msg and socket.gethostname() in msg
        assert out.read_bytes() == b"the holder's bytes"  # the loser touched nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the OS dropped the dead holder's lock: a rerun goes ahead and records itself
    with output_lock(out) as lp:
        assert lp == lock_path(out)
        assert json.loads(lp.read_text())["pid"] == os.getpid()
    with output_lock(out):  # released on exit
        pass


def test_lock_on_a_folder_output_is_a_sidecar(tmp_path):
    run = tmp_path / "runs" / "mini"
    with output_lock(run) as lp:
        assert lp == tmp_path / "runs" / "mini.lock"
        with pytest.raises(OutputLockedError):
            with output_lock(tmp_path / "runs" / ".." / "runs" / "mini"):
                pass
    assert not run.exists()  # the lock creates nothing at the output path


def test_check_not_input(tmp_path):
    src = tmp_path / "d" / "train.h5"
    src.parent.mkdir()
    src.write_bytes(b"x")
    with pytest.raises(FeatxError, match="is the input"):
        check_not_input(tmp_path / "d" / ".." / "d" / "train.h5", src)
    os.symlink(src, tmp_path / "link.h5")
    with pytest.raises(FeatxError, match="is the input"):
        check_not_input(tmp_path / "link.h5", src)
    os.link(src, tmp_path / "hard.h5")
    with pytest.raises(FeatxError, match="is the input"):
        check_not_input(tmp_path / "hard.h5", src)
    check_not_input(tmp_path / "d" / "test.h5", src, None)
    check_not_input(tmp_path / "d", src)  # a folder output beside its input is fine ...
    with pytest.raises(FeatxError, match="inside the output folder"):
        check_not_input(tmp_path / "d", src, contains=True)  # ... unless featx may empty it


def _featx_h5(path, **attrs):
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=np.zeros((2, 3), np.float32))
        for k, v in attrs.items():
            f.attrs[k] = v


def test_check_overwritable_accepts_only_featx_outputs(tmp_path):
    check_overwritable(tmp_path / "absent.h5")
    ours = tmp_path / "ours.h5"
    _featx_h5(ours, featx_version="0.1", kind="features")
    check_overwritable(ours)
    foreign_h5 = tmp_path / "foreign.h5"
    _featx_h5(foreign_h5)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"a": 1}')
    for p in (foreign_h5, notes, cfg):
        with pytest.raises(FeatxError, match="not a file featx wrote"):
            check_overwritable(p)
    assert notes.read_text() == "my notes"
    # a partial run of the writer: recognised by its progress record
    part = tmp_path / "x.h5.partial"
    _featx_h5(part)
    (tmp_path / "x.h5.partial.json").write_text(json.dumps({"source_key": "k", "next_index": 0}))
    check_overwritable(part)
    # a classifier is featx's when its manifest names it with the right sha256
    import hashlib

    clf = tmp_path / "clf.pkl"
    clf.write_bytes(b"pickle bytes")
    manifest = {"file": "clf.pkl", "sha256": hashlib.sha256(b"pickle bytes").hexdigest()}
    (tmp_path / "clf.manifest.json").write_text(json.dumps(manifest))
    check_overwritable(clf)
    clf.write_bytes(b"someone else's file")
    with pytest.raises(FeatxError, match="not a file featx wrote"):
        check_overwritable(clf)
    # folders: a train run, an empty folder; not a folder of photos
    run = tmp_path / "run"
    run.mkdir()
    check_overwritable(run)
    (run / "config.json").write_text(json.dumps({"schema": "featx.train/1"}))
    check_overwritable(run)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"jpeg")
    with pytest.raises(FeatxError, match="not a folder featx wrote"):
        check_overwritable(photos)
    assert is_featx_output(tmp_path / "clf.manifest.json") is False  # no featx_version / schema


def test_check_writable_fails_before_work(tmp_path, monkeypatch):
    check_writable(tmp_path / "new" / "deeper" / "clf.pkl")
    assert list(tmp_path.iterdir()) == []  # probed in the nearest existing folder: no folder made, no probe left
    (tmp_path / "new").mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FeatxError, match="not a folder"):
        check_writable(blocker / "sub" / "clf.pkl")  # root cannot be stopped by chmod; a file parent can
    with pytest.raises(FeatxError, match="is a folder"):
        check_writable(tmp_path / "new")

    def read_only(*a, **k):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(FeatxError) as ei:
        check_writable(tmp_path / "clf.pkl")
    assert str(ei.value) == f"cannot write {tmp_path / 'clf.pkl'}: [Errno 30] Read-only file system"


def test_write_error_reads_hdf5_errno():
    e = OSError("Can't write data (file write failed: time = x, filename = 'a', file descriptor = 5, "
                "errno = 28, error message = 'No space left on device', buf = 0x1)")
    assert str(write_error("a.h5.partial", e)) == "cannot write a.h5.partial: [Errno 28] No space left on device"
    e = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert str(write_error("m.json", e)) == "cannot write m.json: [Errno 28] No space left on device"
