"""``featx fit --solver sgd``: logistic regression on a features file larger than memory.

The features are never loaded whole. Every pass reads the file in *slabs*: each slab is a few
contiguous blocks of rows (``ds[a:b]`` reads, never fancy indexing) at seeded random positions,
mixed in memory, so a slab holds several classes even when the file stores them in class order.

* Which rows do what is decided from the labels alone (they fit in memory): a stratified
  ``test_size`` share is the test set (or ``test`` is another file), and a stratified share of the
  rest (:data:`VALIDATION_SHARE`, at most one slab) is the held-out validation set that picks ``C``.
* Pass 1 fits the scaler statistics (``StandardScaler.partial_fit`` on the training rows).
* Passes 2..: one ``SGDClassifier(loss="log_loss", alpha=1 / (C * n_train))`` per candidate
  (``C`` in the grid x scaler) is trained with ``partial_fit`` on every slab (the slab is read once
  for all candidates), for ``epochs`` passes; then the candidates are scored on the validation rows
  and the best one on the test rows, both streamed.

Memory: one slab of features plus the models, whatever the file's size. Peak RSS is bounded by
``slab_rows x dim x 4`` bytes times a small constant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from featx.fit.search import DEFAULT_TEST_SIZE, SCALERS

if TYPE_CHECKING:
    import numpy as np

#: Rows per slab read from the file (64 MiB of 2048-d float32 rows).
DEFAULT_SLAB_ROWS = 8192
#: Passes over the training rows.
DEFAULT_EPOCHS = 5
#: Share of the training rows held out to choose C (capped at one slab).
VALIDATION_SHARE = 0.1
#: Contiguous blocks per slab (mixes the classes of files stored in class order).
BLOCKS_PER_SLAB = 8


class SlabReader:
    """Seeded slabs of ``(x, y, row_index)`` read from a :class:`~featx.store.StoreReader`.

    Every read is one contiguous ``reader.read(a, b)`` of at most ``slab_rows / BLOCKS_PER_SLAB``
    rows; ``reads`` counts them (tests use it to check the file is never loaded whole).
    """

    def __init__(self, reader, slab_rows: int = DEFAULT_SLAB_ROWS):
        self.reader = reader
        self.slab_rows = max(1, int(slab_rows))
        self.block = max(1, self.slab_rows // BLOCKS_PER_SLAB)
        self.reads = 0

    def slabs(self, seed: int | None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        import numpy as np

        n = len(self.reader)
        starts = np.arange(0, n, self.block)
        if seed is not None:
            starts = np.random.default_rng(seed).permutation(starts)
        per = max(1, self.slab_rows // self.block)
        rng = np.random.default_rng(None if seed is None else seed + 1)
        for k in range(0, len(starts), per):
            xs, idx = [], []
            for s in starts[k : k + per]:
                a, b = int(s), min(int(s) + self.block, n)
                xs.append(self.reader.read(a, b))
                self.reads += 1
                idx.append(np.arange(a, b))
            x = np.concatenate(xs) if len(xs) > 1 else xs[0]
            i = np.concatenate(idx)
            if seed is not None:
                perm = rng.permutation(len(i))
                x, i = x[perm], i[perm]
            yield x, self.reader.labels[i], i


def _roles(y, test_size, seed: int, has_test_file: bool, slab_rows: int):
    """Per-row role: 0 train, 1 validation, 2 test (stratified draws from the labels alone)."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from featx.errors import FeatxError

    role = np.zeros(len(y), np.int8)
    idx = np.arange(len(y))
    try:
        if not has_test_file:
            idx, test = train_test_split(idx, test_size=test_size if test_size < 1 else int(test_size),
                                         stratify=y, random_state=seed)
            role[test] = 2
        n_val = min(max(int(round(VALIDATION_SHARE * len(idx))), len(np.unique(y))), slab_rows)
        _, val = train_test_split(idx, test_size=n_val, stratify=y[idx], random_state=seed + 1)
    except ValueError as e:
        raise FeatxError(f"cannot draw stratified held-out rows ({e}): use more rows or a test file") from None
    role[val] = 1
    return role


def _rows(slabs, role, want: int):
    for x, y, i in slabs:
        m = role[i] == want
        if m.any():
            yield x[m], y[m]


def fit_sgd(
    features,
    *,
    test=None,
    label_names=None,
    test_size: float = DEFAULT_TEST_SIZE,
    seed: int = 42,
    grid=None,
    scalers=SCALERS,
    slab_rows: int = DEFAULT_SLAB_ROWS,
    epochs: int = DEFAULT_EPOCHS,
    **_ignored,
):
    """Fit on the features file ``features`` slab by slab; returns a :class:`featx.fit.FitResult`."""
    import numpy as np
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import Pipeline

    from featx.errors import FeatxError
    from featx.fit.result import FitResult, full_proba
    from featx.fit.scaling import global_from_standard, make_scaler
    from featx.fit.search import DEFAULT_GRID, check_grid
    from featx.results.metrics import score
    from featx.store import open_store

    grid = sorted(check_grid(DEFAULT_GRID if grid is None else grid))
    if epochs < 1:
        raise FeatxError(f"epochs must be at least 1. Received: epochs={epochs}")
    t0 = time.perf_counter()
    with open_store(features, kind="features") as r:
        names = list(r.label_names) if label_names is None else list(label_names)
        n_classes = len(names)
        classes = np.arange(n_classes)
        if len(r.row_shape) != 1:
            raise FeatxError(f"{features}: expected 2-D features (N, D). Received shape {(len(r), *r.row_shape)}")
        role = _roles(r.labels, test_size, seed, test is not None, slab_rows)
        n_train = int((role == 0).sum())
        src = SlabReader(r, slab_rows)
        standard = make_scaler("standard")
        for x, _ in _rows(src.slabs(seed), role, 0):
            if not np.isfinite(x).all():
                raise FeatxError(f"{features}: features contain NaN or infinite values; re-extract them")
            standard.partial_fit(x)
        fitted = {"standard": standard, "global": global_from_standard(standard)}
        models = {
            (s, c): SGDClassifier(loss="log_loss", alpha=1.0 / (c * n_train), random_state=seed, tol=None)
            for s in scalers for c in grid
        }
        for epoch in range(epochs):
            for x, y in _rows(src.slabs(seed + 1000 * (epoch + 1)), role, 0):
                z = {s: fitted[s].transform(x) for s in scalers}
                for (s, _), m in models.items():
                    m.partial_fit(z[s], y, classes=classes)
        correct = dict.fromkeys(models, 0)
        n_val = 0
        for x, y in _rows(src.slabs(None), role, 1):
            n_val += len(y)
            z = {s: fitted[s].transform(x) for s in scalers}
            for (s, c), m in models.items():
                correct[(s, c)] += int((m.predict(z[s]) == y).sum())
        val_scores = {k: v / max(1, n_val) for k, v in correct.items()}
        order = {s: k for k, s in enumerate(scalers)}
        top = max(val_scores.values())
        best = min((k for k, v in val_scores.items() if math.isclose(v, top, abs_tol=1e-12)),
                   key=lambda k: (k[1], order[k[0]]))
        estimator = Pipeline([("scale", fitted[best[0]]), ("lr", models[best])])
        fit_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        test_src = src
        if test is None:
            proba_y = [(full_proba(estimator, x, n_classes), y) for x, y in _rows(src.slabs(None), role, 2)]
        else:
            test_r = open_store(test, kind="features")
            test_src = SlabReader(test_r, slab_rows)
            try:
                proba_y = [(full_proba(estimator, x, n_classes), y) for x, y, _ in test_src.slabs(None)]
            finally:
                test_r.close()
        predict_seconds = time.perf_counter() - t1
        reads = src.reads + (test_src.reads if test_src is not src else 0)
        dim = int(r.row_shape[0])
    proba = np.concatenate([p for p, _ in proba_y])
    y_test = np.concatenate([y for _, y in proba_y])
    scores = score(y_test, proba, names)
    results = [{"scaler": s, "C": c, "alpha": models[(s, c)].alpha, "val_score": v} for (s, c), v in val_scores.items()]
    notes = []
    if math.isclose(best[1], grid[0]) or math.isclose(best[1], grid[-1]):
        notes.append(f"the best C ({best[1]:g}) is at the edge of the grid {grid[0]:g}..{grid[-1]:g}: try a wider --grid")
    config = {
        "grid": grid, "search": "held-out rows", "solver": "sgd", "seed": seed, "epochs": epochs,
        "slab_rows": slab_rows, "slabs_read": reads, "n_validation": n_val, "scalers": list(scalers),
        "test": "test file" if test is not None else "stratified split",
        "test_size": None if test is not None else test_size, "cv": None, "jobs": 1, "backend": None,
    }
    return FitResult(
        estimator=estimator, label_names=[str(n) for n in names],
        best_params={"C": best[1], "scaler": best[0], "alpha": models[best].alpha},
        cv_score=top, cv_results=sorted(results, key=lambda d: (d["scaler"], d["C"])), scores=scores,
        fit_seconds=fit_seconds, predict_seconds=predict_seconds, n_train=n_train, n_test=len(y_test),
        feature_dim=dim, warnings=notes, config=config,
    )
