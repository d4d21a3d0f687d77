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
    try:
        rest, held = _hold_out(labels, n_val, n_test, seed)
    except ValueError:
        k = len(np.unique(labels))
        raise FeatxError(
            f"cannot make a stratified split of {n} images in {k} classes into --val {n_val} --test {n_test}: "
            + advise_split(labels, n_val, n_test, seed)
        ) from None
    out.update(held)
    out["train"] = np.random.default_rng(seed).permutation(rest).astype(np.int64)
    return {k: out[k] for k in ("train", "val", "test")}


def _hold_out(labels: np.ndarray, n_val: int, n_test: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(rest, {"test": ..., "val": ...})``: stratified test then val indices (sklearn's
    ``train_test_split``, in its order); raises its ValueError."""
    from sklearn.model_selection import train_test_split

    rest, out = np.arange(len(labels)), {"test": np.array([], dtype=np.int64), "val": np.array([], dtype=np.int64)}
    for name, count in (("test", n_test), ("val", n_val)):
        if count == 0:
            continue
        rest, held = train_test_split(rest, test_size=count, stratify=labels[rest], random_state=seed, shuffle=True)
        out[name] = np.asarray(held, dtype=np.int64)
    return rest, out


def _works(labels: np.ndarray, n_val: int, n_test: int, seed: int) -> bool:
    try:
        _hold_out(labels, n_val, n_test, seed)
    except ValueError:
        return False
    return len(labels) - n_val - n_test > 0


def advise_split(labels, n_val: int, n_test: int, seed: int = 42) -> str:
    """What to pass instead when ``--val n_val --test n_test`` cannot be split stratified.

    Each held-out split needs at least one image per class, and every class needs two images left
    wherever a split is drawn from it. The advice is computed (and checked) for these labels.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    k, smallest = len(counts), int(counts.min())
    splits = [(name, c) for name, c in (("val", n_val), ("test", n_test)) if c]
    need = {name: max(c, k) for name, c in splits}
    tries = []
    if any(need[name] > c for name, c in splits):
        tries.append((need.get("val", 0), need.get("test", 0), "each held-out split needs at least one image per "
                      "class, so use larger ones"))
    if len(splits) == 2:
        tries.append((0, need["test"], "hold out one split only"))
        tries.append((need["val"], 0, "hold out one split only"))
    works = [(v, t, why) for v, t, why in tries if _works(labels, v, t, seed)]
    if works:
        v, t, why = works[0]
        more = [f"--val {v2} --test {t2}" for v2, t2, _ in works[1:2] if (v2, t2) != (v, t)]
        return f"{why}: --val {v} --test {t}" + (f" (or {more[0]})" if more else "")
    per_class = len(splits) + 1
    return (f"the smallest class has {smallest} image{'s' * (smallest != 1)} and each class needs about {per_class} "
            f"(one for train and one per held-out split): add images to the small classes, or use --val 0 --test 0 "
            "and hold out nothing")


def shuffle_preset(indices: Sequence[int], seed: int) -> np.ndarray:
    """A preset split (from ``train/`` etc. folders) in a seeded random order."""
    return np.random.default_rng(seed).permutation(np.asarray(indices, dtype=np.int64))
