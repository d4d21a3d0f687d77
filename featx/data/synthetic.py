"""Tiny synthetic, learnable image stores for tests and benchmarks (no image files needed).

Each class has its own colour and a stripe orientation; pixels get noise and a random shift, so
a small CNN separates the classes within an epoch or two while crops and flips keep them apart.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from featx.store import StoreWriter


def synthetic_images(n: int, size: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` RGB uint8 images ``(n, size, size, 3)`` and balanced labels ``(n,)``.

    The look of each class depends on ``classes`` only; ``seed`` draws the samples, so stores
    written with different seeds are train/val/test splits of one problem."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    hues = np.random.default_rng(1234 + classes).uniform(40, 215, size=(classes, 3))  # same for every seed
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.empty((n, size, size, 3), np.uint8)
    for i, c in enumerate(labels):
        angle = np.pi * c / classes
        phase = rng.uniform(0, 2 * np.pi)
        stripes = np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * (2 * np.pi / 6) + phase)
        img = hues[c][None, None, :] + 35 * stripes[..., None] + rng.normal(0, 12, (size, size, 3))
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out, labels.astype(np.int64)


def write_synthetic_store(
    path: str | os.PathLike,
    n: int,
    size: int,
    classes: int = 3,
    *,
    seed: int = 0,
    compute_mean: bool = True,
    label_names: list[str] | None = None,
) -> Path:
    """Write a complete images store of ``n`` synthetic images at ``path``; returns the path."""
    x, y = synthetic_images(n, size, classes, seed)
    names = label_names or [f"class{c}" for c in range(classes)]
    with StoreWriter(
        path, kind="images", row_shape=(size, size, 3), dtype=np.uint8,
        paths=[f"synthetic/{i:06d}.png" for i in range(n)], labels=y, label_names=names,
        config={"synthetic": True, "n": n, "size": size, "classes": classes, "seed": seed},
        compute_mean=compute_mean, overwrite=True,
    ) as w:
        w.add_batch(0, x)
        w.finish()
    return Path(path)
