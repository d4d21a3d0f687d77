"""``featx fit --solver sgd``: softmax regression on a features file larger than memory.

The features are never loaded whole. Every pass reads the file in *slabs*: each slab is a few
contiguous blocks of rows (``read_into``: HDF5 reads straight into one reused slab buffer, never
fancy indexing) at seeded random positions, and its rows are visited in a seeded random order, so a
minibatch holds several classes even when the file stores them in class order.

* Which rows do what is decided from the labels alone (they fit in memory): a stratified
  ``test_size`` share is the test set (or ``test`` is another file), and a stratified share of the
  rest (:data:`VALIDATION_SHARE`, at most half a slab) is the held-out validation set that picks ``C``.
* Pass 1: the scaler statistics (``StandardScaler.partial_fit`` on the training rows, a slab's
  block at a time; the ``global`` scaler from the same moments) and the validation rows, kept in
  memory (at most half a slab).
* Passes 2..: ``epochs`` passes of minibatches over the training rows. Every ``C`` of the grid x
  every scaler is one head of :class:`featx.fit.softmax.SoftmaxHeads` (a multinomial logistic
  regression with sklearn's penalty ``1 / (C * n_train)``, trained by Adam with a cosine-decayed
  learning rate, in Keras on any backend); one matrix product per minibatch serves all heads.
* The head with the best validation accuracy (ties: the smaller ``C``) becomes a plain
  ``Pipeline(scaler, LogisticRegression)`` (its ``coef_`` and ``intercept_`` set from the head, so
  probabilities are its softmax; predict, export and ``finetune --head`` take it as any fit), and
  is scored on the test rows, streamed.

Memory: one slab buffer, the validation rows (at most half a slab), the heads (weights and Adam's two
moments) and a block's temporaries, whatever the file's size; the peak RSS is measured and reported.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from featx.fit.search import DEFAULT_TEST_SIZE, SCALERS

if TYPE_CHECKING:
    import numpy as np

#: Rows per slab read from the file (64 MiB of 2048-d float32 rows).
DEFAULT_SLAB_ROWS = 8192
#: Passes over the training rows. (It was 10; on 60k x 2048 Fashion-MNIST CNN features 16 scored
#: 0.8992 against 10's 0.8960, the in-memory fit 0.9015, in 47 s against 41 s for the whole fit.)
DEFAULT_EPOCHS = 16
#: Adam's peak learning rate (cosine-decayed to 0 over all steps; on standardised features).
DEFAULT_LEARNING_RATE = 0.01
#: Rows per minibatch.
DEFAULT_BATCH_SIZE = 1024
#: Few training rows: minibatches shrink (to MIN_BATCH_ROWS at least) so an epoch has at least
#: MIN_STEPS_PER_EPOCH steps (Adam needs steps, not only passes, to converge).
MIN_STEPS_PER_EPOCH = 32
MIN_BATCH_ROWS = 16
#: Share of the training rows held out to choose C, capped at half a slab: with the slab buffer, the
#: minibatch buffer and the step's temporaries that stays within two slabs (a whole slab of
#: validation rows went 25 MB over on 200k rows).
VALIDATION_SHARE = 0.1
#: Contiguous blocks per slab (mixes the classes of files stored in class order).
BLOCKS_PER_SLAB = 8
#: ``featx fit --solver auto`` loads the features when ``IN_MEMORY_FACTOR`` x their bytes fit in
#: the available memory (``FEATX_FIT_MEMORY`` bytes when set, e.g. ``2G``; else the OS's figure):
#: the in-memory fit peaked at 3.2x the feature bytes on 60k x 2048 (scripts/bench_fit.py --ooc).
IN_MEMORY_FACTOR = 3.5
MEMORY_ENV = "FEATX_FIT_MEMORY"


class SlabReader:
    """Seeded slabs of ``(x, y, row_index)`` read from a :class:`~featx.store.StoreReader`.

    ``x`` is a view of one reused buffer (valid until the next slab). Every read is one contiguous
    ``reader.read_into(buffer, a, b)`` of at most ``slab_rows / BLOCKS_PER_SLAB`` rows; ``reads``
    counts them (tests use it to check the file is never loaded whole).
    """

    def __init__(self, reader, slab_rows: int = DEFAULT_SLAB_ROWS):
        import numpy as np

        self.reader = reader
        self.slab_rows = max(1, int(slab_rows))
        self.block = max(1, self.slab_rows // BLOCKS_PER_SLAB)
        self.per = max(1, self.slab_rows // self.block)
        rows = min(self.per * self.block, max(1, len(reader)))
        self.buffer = np.empty((rows, *reader.row_shape), np.float32)
        self.reads = 0

    @property
    def nbytes(self) -> int:
        return int(self.buffer.nbytes)

    def slabs(self, seed: int | None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        import numpy as np

        n = len(self.reader)
        starts = np.arange(0, n, self.block)
        if seed is not None:
            starts = np.random.default_rng(seed).permutation(starts)
        for k in range(0, len(starts), self.per):
            o, idx = 0, []
            for s in starts[k : k + self.per]:
                a, b = int(s), min(int(s) + self.block, n)
                self.reader.read_into(self.buffer[o : o + b - a], a, b)
                self.reads += 1
                idx.append(np.arange(a, b))
                o += b - a
            i = np.concatenate(idx)
            yield self.buffer[:o], self.reader.labels[i], i


def _roles(y, test_size, seed: int, has_test_file: bool, slab_rows: int):
    """Per-row role: 0 train, 1 validation, 2 test (stratified draws from the labels alone)."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from featx.errors import FeatxError

    role = np.zeros(len(y), np.int8)
    idx = np.arange(len(y))
    if len(np.unique(y)) < 2:
        raise FeatxError(f"the features hold {len(np.unique(y))} class(es): a classifier needs at least 2")
    try:
        if not has_test_file:
            idx, test = train_test_split(idx, test_size=test_size if test_size < 1 else int(test_size),
                                         stratify=y, random_state=seed)
            role[test] = 2
        n_val = min(max(int(round(VALIDATION_SHARE * len(idx))), len(np.unique(y))), max(1, slab_rows // 2))
        _, val = train_test_split(idx, test_size=n_val, stratify=y[idx], random_state=seed + 1)
    except ValueError as e:
        raise FeatxError(f"cannot draw stratified held-out rows ({e}): use more rows or a test file") from None
    role[val] = 1
    return role


def _batches(slabs, role, want: int, batch_size: int, rng) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Minibatches of the rows with role ``want``, in a seeded order within each slab; a slab's
    remainder is carried into the next one's first batch.

    Every batch is a view of one reused buffer (valid until the next batch is drawn): a fresh 8 MB
    array per step left the allocator holding ever more freed blocks (the resident size crept up
    by about 40 MB over the first epochs of a 30k x 2048 fit). The last, short batch is dropped
    (as ``drop_remainder`` in tf.data) unless it is the only one: a second batch shape makes the
    backend trace and compile its step again (about 13 MB more under TensorFlow, and its time);
    the rows dropped differ from epoch to epoch, as the slabs' order does."""
    import numpy as np

    bx = by = None
    n = full = 0  # rows of the current batch already in the buffer (the carry); full batches yielded
    for x, y, i in slabs:
        if bx is None:
            bx, by = np.empty((batch_size, *x.shape[1:]), x.dtype), np.empty(batch_size, y.dtype)
        pos = np.flatnonzero(role[i] == want)
        if rng is not None:
            pos = rng.permutation(pos)
        a = 0
        while a < len(pos):
            p = pos[a : a + batch_size - n]
            np.take(x, p, axis=0, out=bx[n : n + len(p)])
            by[n : n + len(p)] = y[p]
            n += len(p)
            a += len(p)
            if n == batch_size:
                yield bx, by
                n, full = 0, full + 1
    if n and not full:
        yield bx[:n], by[:n]


def keep_freed_memory_low() -> bool:
    """Have glibc hand freed blocks of 1 MiB or more straight back to the OS (``mallopt``).

    By default glibc raises its mmap threshold each time a large block is freed, after which
    blocks of that size come from heaps it keeps: the backend's per-step tensors (8 MB batches)
    then left the resident size creeping up by about 40 MB over a 30k x 2048 fit, memory that
    was free but never returned. A fixed threshold keeps it flat (measured: peak 1,017 vs 1,050 MB,
    the same fit). Linux/glibc only; elsewhere nothing is done (False)."""
    import ctypes

    from featx.runtime.libc import libc_function

    mallopt = libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    return mallopt is not None and bool(mallopt(-3, 1 << 20))  # M_MMAP_THRESHOLD = -3 in malloc.h


def reset_peak_rss() -> None:
    """Restart the kernel's resident high-water mark (``VmHWM``) here, so :func:`peak_rss` is this
    fit's peak, not an earlier one of the same process (Linux; elsewhere nothing is done)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def current_rss() -> int:
    """This process's resident bytes now (Linux ``/proc``; elsewhere its peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss()


def peak_rss() -> int:
    """This process's peak resident bytes: Linux's ``VmHWM`` (the high-water mark of this program's
    memory; ``ru_maxrss`` also counts the parent's memory at ``fork``), else ``ru_maxrss``."""
    import resource
    import sys

    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass

    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(v if sys.platform == "darwin" else v * 1024)


def _parse_bytes(text: str) -> int:
    from featx.errors import FeatxError

    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    try:
        value = float(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        value = -1
    if not value > 0 or not math.isfinite(value):
        raise FeatxError(f"{MEMORY_ENV} must be a size such as 2G or 512M. Received: {text!r}")
    return int(value)


def available_memory() -> tuple[int, str]:
    """``(bytes, where from)``: ``FEATX_FIT_MEMORY`` when set, else the OS's available memory."""
    if os.environ.get(MEMORY_ENV):
        return _parse_bytes(os.environ[MEMORY_ENV]), MEMORY_ENV
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available memory"
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "available memory"
    except (ValueError, OSError, AttributeError):
        return 1 << 62, "unknown memory"


def choose_solver(features, test=None) -> tuple[str, str]:
    """``(solver, why)`` for ``--solver auto``: ``lbfgs`` when ``IN_MEMORY_FACTOR`` x the features'
    float32 bytes (training and test files) fit in :func:`available_memory`, else ``sgd``."""
    from featx.store import open_store

    need = 0
    for p in (features, test):
        if p is not None:
            with open_store(p, kind="features") as r:
                need += len(r) * int(math.prod(r.row_shape)) * 4
    need = int(need * IN_MEMORY_FACTOR)
    avail, source = available_memory()
    if need <= avail:
        return "lbfgs", f"in memory: the fit needs about {size_text(need)}, {size_text(avail)} {source}"
    return "sgd", (f"out of core (--solver sgd): loading the features would need about {size_text(need)}, "
                   f"more than the {size_text(avail)} {source}")


def size_text(b: float) -> str:
    """``1.57 GB``, ``64 MB``, ``10 KB`` (decimal units)."""
    return f"{b / 1e9:.2f} GB" if b >= 1e9 else f"{b / 1e6:.0f} MB" if b >= 1e6 else f"{b / 1e3:.0f} KB"


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
    learning_rate: float = DEFAULT_LEARNING_RATE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    **_ignored,
):
    """Fit on the features file ``features`` slab by slab; returns a :class:`featx.fit.FitResult`."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from tqdm.auto import tqdm

    from featx.errors import FeatxError
    from featx.fit.result import FitResult, full_proba
    from featx.fit.scaling import global_from_standard
    from featx.fit.search import DEFAULT_GRID, check_grid
    from featx.fit.softmax import SoftmaxHeads
    from featx.results.metrics import score
    from featx.store import open_store

    grid = sorted(check_grid(DEFAULT_GRID if grid is None else grid))
    if epochs < 1:
        raise FeatxError(f"epochs must be at least 1. Received: epochs={epochs}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise FeatxError(f"learning_rate must be positive. Received: learning_rate={learning_rate}")
    if batch_size < 1:
        raise FeatxError(f"batch_size must be at least 1. Received: batch_size={batch_size}")
    bad = [s for s in scalers if s not in SCALERS]
    if bad or not scalers:
        raise FeatxError(f"scalers must be among {SCALERS}. Received: scalers={list(scalers)!r}")
    t0 = time.perf_counter()
    with open_store(features, kind="features") as r:
        names = list(r.label_names) if label_names is None else list(label_names)
        n_classes = len(names)
        if len(r.row_shape) != 1:
            raise FeatxError(f"{features}: expected 2-D features (N, D). Received shape {(len(r), *r.row_shape)}")
        dim = int(r.row_shape[0])
        role = _roles(r.labels, test_size, seed, test is not None, slab_rows)
        n_train = int((role == 0).sum())
        import keras  # noqa: F401 - the backend's import counts with the interpreter, not the fit

        keep_freed_memory_low()
        reset_peak_rss()
        rss_start = current_rss()
        src = SlabReader(r, slab_rows)
        # pass 1: scaler moments of the training rows, block by block; the validation rows kept
        standard = StandardScaler()
        n_val = int((role == 1).sum())
        val_x, val_y, filled = np.empty((n_val, dim), np.float32), np.empty(n_val, np.int64), 0
        for x, y, i in src.slabs(seed):
            ri = role[i]
            step = max(1, src.block // 4)  # sklearn's float64 temporaries: a quarter block
            for a in range(0, len(x), step):
                blk, rb = x[a : a + step], ri[a : a + step]
                if not np.isfinite(blk).all():
                    raise FeatxError(f"{features}: features contain NaN or infinite values; re-extract them")
                if (rb == 0).any():
                    standard.partial_fit(blk[rb == 0])
            v = ri == 1
            val_x[filled : filled + int(v.sum())] = x[v]
            val_y[filled : filled + int(v.sum())] = y[v]
            filled += int(v.sum())
        x = y = i = blk = None  # views of the slab buffer: it must be freed by `src.buffer = None` later
        fitted = {"standard": standard, "global": global_from_standard(standard)}
        present = np.unique(r.labels[role == 0])
        heads = [(s, c) for s in scalers for c in grid]
        std = np.asarray(standard.scale_, np.float64)
        ratio = {"standard": np.ones(dim), "global": std / fitted["global"].scale_}
        batch_size = min(batch_size, max(MIN_BATCH_ROWS, math.ceil(n_train / MIN_STEPS_PER_EPOCH)))
        steps_per_epoch = max(1, n_train // batch_size)  # the short last batch is dropped (_batches)
        model = SoftmaxHeads(dim, n_classes, [1.0 / (c * n_train) for _, c in heads], [ratio[s] for s, _ in heads],
                             mean=standard.mean_, scale=std, learning_rate=learning_rate,
                             total_steps=epochs * steps_per_epoch)
        val_curve, runtime_bytes, earlier_peak = [], 0, 0
        bar = tqdm(total=epochs * steps_per_epoch, desc="fit sgd", unit="step", disable=not progress, leave=False)
        try:
            for epoch in range(epochs):
                rng = np.random.default_rng(seed + 1000 * (epoch + 1) + 1)
                for xb, yb in _batches(src.slabs(seed + 1000 * (epoch + 1)), role, 0, batch_size, rng):
                    if model.steps == 0:  # the backend traces and compiles its train step here
                        before, peak_before = current_rss(), peak_rss()
                        reset_peak_rss()
                        model.train_step(xb, yb)
                        runtime_bytes = max(0, peak_rss() - before)  # the graph and one step's tensors
                        earlier_peak = peak_before
                    else:
                        model.train_step(xb, yb)
                    bar.update(1)
                correct = np.zeros(len(heads), np.int64)
                for a in range(0, n_val, batch_size):
                    correct += (model.predict(val_x[a : a + batch_size]) == val_y[a : a + batch_size, None]).sum(0)
                val_curve.append(correct / max(1, n_val))
        finally:
            bar.close()
        val_scores = {h: float(v) for h, v in zip(heads, val_curve[-1])}
        order = {s: k for k, s in enumerate(scalers)}
        top = max(val_scores.values())
        best = min((k for k, v in val_scores.items() if math.isclose(v, top, abs_tol=1e-12)),
                   key=lambda k: (k[1], order[k[0]]))
        coef, intercept = model.head(heads.index(best))
        estimator = Pipeline([("scale", fitted[best[0]]), ("lr", _logistic(LogisticRegression, coef, intercept,
                                                                            present, best[1], dim, model.steps))])
        fit_seconds = time.perf_counter() - t0
        del val_x
        t1 = time.perf_counter()
        test_src, proba_y = src, []
        if test is None:
            for x, y, i in src.slabs(None):
                t = np.flatnonzero(role[i] == 2)
                for a in range(0, len(t), batch_size):
                    proba_y.append((full_proba(estimator, x[t[a : a + batch_size]], n_classes), y[t[a : a + batch_size]]))
        else:
            with open_store(test, kind="features") as test_r:
                test_src = SlabReader(test_r, slab_rows)
                src.buffer = None  # one slab buffer at a time
                for x, y, _ in test_src.slabs(None):
                    for a in range(0, len(x), batch_size):
                        proba_y.append((full_proba(estimator, x[a : a + batch_size], n_classes), y[a : a + batch_size]))
        predict_seconds = time.perf_counter() - t1
        reads = src.reads + (test_src.reads if test_src is not src else 0)
        slab_bytes, val_bytes = test_src.nbytes, n_val * dim * 4
    rss_peak = max(peak_rss(), earlier_peak)
    proba = np.concatenate([p for p, _ in proba_y])
    y_test = np.concatenate([y for _, y in proba_y])
    scores = score(y_test, proba, names)
    results = [{"scaler": s, "C": c, "alpha": 1.0 / (c * n_train), "val_score": val_scores[(s, c)],
                "val_curve": [round(float(e[k]), 6) for e in val_curve]} for k, (s, c) in enumerate(heads)]
    notes = []
    if len(grid) > 1 and (math.isclose(best[1], grid[0]) or math.isclose(best[1], grid[-1])):
        notes.append(f"the best C ({best[1]:g}) is at the edge of the grid {grid[0]:g}..{grid[-1]:g}: try a wider --grid")
    import keras

    config = {
        "grid": grid, "search": "held-out rows", "solver": "sgd", "seed": seed, "epochs": epochs,
        "optimizer": "Adam + CosineDecay (keras), softmax heads", "learning_rate": learning_rate,
        "batch_size": batch_size, "steps": model.steps, "keras_backend": keras.backend.backend(),
        "slab_rows": slab_rows, "slabs_read": reads, "n_validation": n_val, "scalers": list(scalers),
        "test": "test file" if test is not None else "stratified split",
        "test_size": None if test is not None else test_size, "cv": None, "jobs": 1, "backend": None,
        "memory": memory_report(rss_peak, rss_start, runtime_bytes, slab_bytes, val_bytes, model.nbytes),
    }
    return FitResult(
        estimator=estimator, label_names=[str(n) for n in names],
        best_params={"C": best[1], "scaler": best[0], "alpha": 1.0 / (best[1] * n_train)},
        cv_score=top, cv_results=sorted(results, key=lambda d: (d["scaler"], d["C"])), scores=scores,
        fit_seconds=fit_seconds, predict_seconds=predict_seconds, n_train=n_train, n_test=len(y_test),
        feature_dim=dim, warnings=notes, config=config,
    )


def memory_report(peak: int, start: int, runtime: int, slab: int, validation: int, heads: int) -> dict:
    """The fit's memory against its bound: the interpreter (Python and the libraries, the Keras
    backend imported: ``start``), the backend's compiled train step (``runtime``: the peak resident
    growth across the first step: the traced graph and one step's tensors), two slabs (the slab buffer, and the validation rows with the
    minibatch and the temporaries of a block) and the heads (weights and Adam's moments)."""
    bound = start + runtime + 2 * slab + heads
    return {"peak_rss_bytes": peak, "start_rss_bytes": start, "runtime_bytes": runtime, "slab_buffer_bytes": slab,
            "validation_bytes": validation, "heads_bytes": heads, "data_bytes": max(0, peak - start - runtime),
            "bound_bytes": bound, "within_bound": peak <= bound}


def _logistic(cls, coef, intercept, present, C: float, dim: int, steps: int):
    """A fitted ``LogisticRegression`` with the head's weights: the classes seen in training; two
    classes as sklearn's one logit (``w_1 - w_0``), its probabilities then equal the softmax's."""
    import numpy as np

    coef, intercept = coef[present], intercept[present]
    if len(present) == 2:
        coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
    lr = cls(C=C)
    lr.coef_ = np.ascontiguousarray(coef, dtype=np.float64)
    lr.intercept_ = np.asarray(intercept, dtype=np.float64)
    lr.classes_ = np.asarray(present, dtype=np.int64)
    lr.n_features_in_ = dim
    lr.n_iter_ = np.asarray([steps], dtype=np.int32)
    return lr
