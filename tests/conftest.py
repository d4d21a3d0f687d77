"""Shared fixtures: tiny labelled image folders and odd image files, all generated, all seeded."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `pytest -n N`: N workers share the cores, so each worker's (and its children's) TensorFlow and BLAS
# compute pools get cores // N threads; oversubscribed pools cost more than they bring on 2 cores
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
if _WORKERS > 1:
    for _var in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(_var, str(max(1, (os.cpu_count() or 1) // _WORKERS)))


def color_image(rng: np.random.Generator, w: int = 24, h: int = 20, tint: int = 0) -> np.ndarray:
    """A small RGB image whose mean colour depends on ``tint`` (so classes are separable)."""
    base = np.zeros((h, w, 3), np.uint8)
    base[..., tint % 3] = 180
    noise = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    return (base + noise).astype(np.uint8)


def disk_full_when_syncing(monkeypatch, name: str):
    """``os.fsync`` raises ENOSPC for files whose path contains ``name`` (the fd's path read from
    ``/proc``, Linux); other files sync as usual. Returns the real ``os.fsync``."""
    import errno

    real = os.fsync

    def fsync(fd):
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return real


def save(arr: np.ndarray, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def class_folder(tmp_path, rng) -> Path:
    """``src/{red,green,blue}/*.png|jpg``: 3 classes x 10 images, mixed extensions and case."""
    src = tmp_path / "src"
    for c, name in enumerate(["red", "green", "blue"]):
        for i in range(10):
            ext = [".png", ".jpg", ".JPG", ".bmp", ".webp"][i % 5]
            save(color_image(rng, tint=c), src / name / f"{name}_{i:02d}{ext}")
    return src


@pytest.fixture
def flat_folder(tmp_path, rng) -> Path:
    """Kaggle Dogs-vs-Cats style names: ``cat.0.jpg``, ``dog.0.jpg``..."""
    src = tmp_path / "flat"
    for i in range(8):
        save(color_image(rng, tint=0), src / f"cat.{i}.jpg")
        save(color_image(rng, tint=1), src / f"dog.{i}.jpg")
    return src


def write_exif_rotated(path: Path, arr: np.ndarray, orientation: int = 6) -> Path:
    """A JPEG whose pixels are stored unrotated with EXIF Orientation set (6 = rotate 90 CW to view)."""
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, exif=exif.tobytes(), quality=95)
    return path


@pytest.fixture
def one_gpu(monkeypatch):
    """``resolve_accel`` counts one GPU: featx takes its GPU defaults (mixed precision, XLA, overlap),
    which still run on the CPU. Only the device count is faked; nothing else about TensorFlow."""
    import featx.runtime.backend as backend

    monkeypatch.setattr(backend, "gpu_count", lambda: 1)
    monkeypatch.setattr(backend, "bf16_supported", lambda: False)  # float16, as on a pre-Ampere GPU
    return 1
