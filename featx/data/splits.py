"""Stratified, seeded train/val/test splits (fractions or counts)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featx.errors import FeatxError


def _as_count(value: float, n: int, name: str) -> int:
    """``0 < value < 1`` is a fraction of ``n``; a whole number >= 1 is a count."""
    if value < 0:
        raise FeatxError(f"--{name} must be >= 0. Received: {value}")
    if value < 1:
        return int(round(value * n))
    if value != int(value):
        raise FeatxError(f"--{name} must be a fraction below 1 or a whole count. Received: {value}")
    return int(value)


def stratified_split(
    labels: Sequence[int], *, val: float = 0.1, test: float = 0.1, seed: int = 42
) -> dict[str, np.ndarray]:
    """Split row indices into train/val/test, stratified by label, reproducible for a seed.

    Each split comes back in a seeded random order (so contiguous blocks of a file mix classes).
    """
    labels = np.asarray(labels)
    n = len(labels)
    n_test, n_val = _as_count(test, n, "test"), _as_count(val, n, "val")
    if n_test + n_val >= n:
        raise FeatxError(f"--val and --test take {n_val + n_test} of {n} images: nothing left to train on")
    idx = np.arange(n)
    out: dict[str, np.ndarray] = {"test": np.array([], dtype=np.int64), "val": np.array([], dtype=np.int64)}
    if n_test == 0 and n_val == 0:  # nothing to hold out: skip importing scikit-learn
        out["train"] = np.random.default_rng(seed).permutation(idx).astype(np.int64)
        return {k: out[k] for k in ("train", "val", "test")}
    from sklearn.model_selection import train_test_split

    rest, rest_y = idx, labels
    try:
        for name, count in (("test", n_test), ("val", n_val)):
            if count == 0:
                continue
            rest, held = train_test_split(rest, test_size=count, stratify=rest_y, random_state=seed, shuffle=True)
            rest_y = labels[rest]
            out[name] = np.asarray(held, dtype=np.int64)
    except ValueError as e:
        counts = np.bincount(labels)
        raise FeatxError(
            f"cannot make a stratified split ({e}); smallest class has {counts[counts > 0].min()} images: "
            "use smaller --val/--test or more images"
        ) from None
    out["train"] = np.random.default_rng(seed).permutation(rest).astype(np.int64)
    return {k: out[k] for k in ("train", "val", "test")}


def shuffle_preset(indices: Sequence[int], seed: int) -> np.ndarray:
    """A preset split (from ``train/`` etc. folders) in a seeded random order."""
    return np.random.default_rng(seed).permutation(np.asarray(indices, dtype=np.int64))
