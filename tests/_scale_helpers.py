"""Helpers for the sharded / Ray extract tests (importable by Ray workers: hooks are pickled by reference)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import h5py
import numpy as np

from tests.conftest import color_image, save


def make_folder(root: Path, per_class: int = 5) -> Path:
    """3 classes x ``per_class`` small images (PNG/JPEG/BMP, various sizes) plus one empty file (a skip)."""
    rng = np.random.default_rng(11)
    for c, name in enumerate(["bird", "cat", "dog"]):
        for i in range(per_class):
            ext = [".png", ".jpg", ".bmp"][i % 3]
            save(color_image(rng, w=20 + 3 * i, h=18 + 2 * c, tint=c), root / name / f"{name}_{i}{ext}")
    (root / "cat" / "cat_9.png").write_bytes(b"")  # decode skip, in the middle of the rows
    return root


class KillAt:
    """``on_batch`` hook: SIGKILL the process that runs it once ``next_index`` reaches ``row``."""

    def __init__(self, row: int):
        self.row = row

    def __call__(self, next_index: int) -> None:
        if next_index >= self.row:
            os.kill(os.getpid(), signal.SIGKILL)


class FailAt:
    """``on_batch`` hook: raise once ``next_index`` reaches ``row`` (an interrupted run, in-process)."""

    def __init__(self, row: int):
        self.row = row

    def __call__(self, next_index: int) -> None:
        if next_index >= self.row:
            raise RuntimeError(f"test: stop at row {next_index}")


def wait_for_actors_to_exit(name: str = "ShardWorker", timeout: float = 60.0) -> None:
    """Wait until no process started under this one runs a Ray actor ``name`` (a dead driver's actors)."""
    import psutil

    deadline = time.monotonic() + timeout
    me = psutil.Process()
    while time.monotonic() < deadline:
        alive = []
        for p in me.children(recursive=True):
            try:
                if any(name in part for part in p.cmdline()):
                    alive.append(p.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        if not alive:
            return
        time.sleep(0.2)
    raise AssertionError(f"actors {name} still running after {timeout}s")


class SlowDown:
    """``on_batch`` hook: sleep after each batch from row ``row`` on (keeps a run busy meanwhile)."""

    def __init__(self, seconds: float, row: int = 0):
        self.seconds, self.row = seconds, row

    def __call__(self, next_index: int) -> None:
        if next_index > self.row:
            time.sleep(self.seconds)


class WaitFor:
    """``on_batch`` hook: hold the run at its first batch until ``path`` exists (the test's "go"),
    at most ``timeout`` seconds: the run stays busy exactly as long as the test needs, no longer."""

    def __init__(self, path, timeout: float = 120.0):
        self.path, self.timeout = str(path), timeout

    def __call__(self, next_index: int) -> None:
        deadline = time.monotonic() + self.timeout
        while not os.path.exists(self.path) and time.monotonic() < deadline:
            time.sleep(0.02)


def assert_same_file(a: Path, b: Path, *, exact: bool = False) -> None:
    """Same rows, labels, paths, names, skips and content key; features allclose (or equal)."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in ("labels", "label_names", "paths"):
            np.testing.assert_array_equal(fa[name][:], fb[name][:])
        if exact:
            np.testing.assert_array_equal(fa["features"][:], fb["features"][:])
        else:
            np.testing.assert_allclose(fa["features"][:], fb["features"][:], rtol=1e-5, atol=1e-6)
        assert sorted(fa.attrs) == sorted(fb.attrs)
        for k in ("source_key", "config", "skipped", "n_skipped", "kind", "complete", "source"):
            assert fa.attrs[k] == fb.attrs[k], k


def shard_state(out: Path) -> dict[str, tuple[int, int] | str]:
    """``{name: (inode, mtime_ns)}`` of finished shard files, ``"partial"`` for unfinished ones."""
    folder = out.with_name(out.name + ".shards")
    state: dict = {}
    for p in sorted(folder.glob("*.h5")):
        st = p.stat()
        state[p.stem] = (st.st_ino, st.st_mtime_ns)
    for p in sorted(folder.glob("*.h5.partial")):
        state.setdefault(p.name.split(".")[0], "partial")
    return state
