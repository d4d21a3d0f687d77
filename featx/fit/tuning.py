"""The hyper-parameter search behind ``featx fit``: the scaler and ``C`` of a logistic regression.

* The model: ``Pipeline([("scale", StandardScaler | GlobalScaler), ("lr", LogisticRegression)])``
  with the lbfgs solver (multinomial for more than two classes).
* The scaler statistics are computed once on the training rows (chunk by chunk) and the features
  are scaled **in place**, in float32: switching between the two scalers is a per-column factor,
  also in place. (The statistics include the rows of every validation fold: an unsupervised mean
  and variance, which shifts the CV scores negligibly and saves a copy of the features per fold.)
* For each candidate scaler, :func:`featx.fit.search.cv_path` walks the ``C`` grid in every fold with
  warm starts (each fit starts from the previous ``C``'s solution); the best mean CV accuracy wins,
  ties to the smaller ``C``, then to the scaler listed first; the winner is refit on all training
  rows, warm-started from the mean fold solution.
* Every fit is :func:`featx.fit.multinomial.fit` (one logit for two classes), L-BFGS
  preconditioned by the features' top principal directions
  (:class:`featx.fit.multinomial.Preconditioner`, one per scaler, estimated on parallel threads):
  the same problem, fewer evaluations; the paths' tolerance bounds the gradient in the
  preconditioned variables (:data:`~featx.fit.search.PRECOND_PATH_TOL`), and so does ``--tol`` for
  the refit.
* Speed: folds run in parallel under a joblib backend (:mod:`featx.fit.backends`), the fits' row
  blocks on a pool of ``jobs`` threads (:func:`featx.fit.multinomial.block_pool`), and every
  product on one BLAS thread: L-BFGS's skinny matrix products gain little from BLAS threads and
  lose a lot when threads compete (``jobs=1`` on 2 cores, session 6: the search ran in 2.0-2.5 s
  on one BLAS thread against 6.2-7.6 s on two on 7,500 x 2,048 binary CNN features, 6.9-8.0 s
  against 18.7-21.0 s on 9,000 x 2,048 ten-class ones; loky's workers get joblib's own limit).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from featx.constants import DEFAULT_CONNECT_TIMEOUT
from featx.fit.search import (  # noqa: F401 - public names
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_CV,
    DEFAULT_GRID,
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    EARLY_STOP_PATIENCE,
    HALVING_FRACTION,
    HALVING_MIN_ROWS,
    HALVING_MIN_SUBSET,
    HALVING_WINDOW,
    HOLDOUT_MIN_ROWS,
    PEAK_MARGIN,
    PRECOND_PATH_TOL,
    SCALERS,
)


@dataclasses.dataclass
class SearchResult:
    estimator: object  # the best pipeline, refit on all training rows
    best_params: dict  # {"C": float, "scaler": "standard" | "global"}
    cv_score: float
    cv_results: list[dict]  # one row per (scaler, C) tried: mean/std score, mean fit seconds, iterations
    seconds: float
    grid: list[float]
    notes: list[str]
    method: str = "warm-started C path per fold"
    holdout: int | None = None  # rows of the one hold-out that replaced the folds on all rows, if any
    path_tol: float | None = None  # lbfgs tolerance along the C paths (the winner is refit at tol)
    precond_rank: int | None = None  # principal directions preconditioning L-BFGS


def make_pipeline(
    C: float = 1.0, *, scaler: str = "standard", tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER, seed: int = 42
):
    """A scaler + ``LogisticRegression(solver="lbfgs")`` pipeline."""
    from sklearn.pipeline import Pipeline

    from featx.fit.scaling import make_scaler
    from featx.fit.search import make_lr

    return Pipeline([("scale", make_scaler(scaler)), ("lr", make_lr(C, tol=tol, max_iter=max_iter, seed=seed))])


def _cores(jobs: int | None) -> int:
    """Threads for the one fit left after the search: ``jobs`` as joblib reads it, at most the cores."""
    from joblib import cpu_count, effective_n_jobs

    return max(1, min(cpu_count(), effective_n_jobs(-1 if jobs is None else jobs)))


def _edge_note(results: list[dict], best: dict, grid: list[float]) -> str | None:
    """A hint when the best C sits at an end of the grid and beats its neighbour there."""
    if len(grid) < 2 or not (math.isclose(best["C"], min(grid)) or math.isclose(best["C"], max(grid))):
        return None
    same = sorted((r for r in results if r["scaler"] == best["scaler"]), key=lambda r: r["C"])
    i = next(k for k, r in enumerate(same) if math.isclose(r["C"], best["C"]))
    inner = same[1] if i == 0 else same[-2]
    if best["mean_score"] > inner["mean_score"]:
        return (f"the best C ({best['C']:g}) is at the edge of the grid {min(grid):g}..{max(grid):g} "
                "and still improving there: try a wider --grid")
    return None


def search(
    X,
    y,
    *,
    scalers=SCALERS,
    grid=None,
    cv: int = DEFAULT_CV,
    jobs: int | None = -1,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    seed: int = 42,
    backend: str = DEFAULT_BACKEND,
    address: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    copy: bool = True,
    halving: bool | None = None,
) -> SearchResult:
    """Find the best scaler and ``C`` by cross-validation; refit it on all of ``(X, y)``.

    ``halving`` (default: on from :data:`~featx.fit.search.HALVING_MIN_ROWS` rows with a grid longer
    than :data:`~featx.fit.search.HALVING_WINDOW`): a first rung searches every scaler and ``C`` on a
    stratified quarter of the rows (at least 2,000), the second only the best scaler and the ``C`` values around
    the best, on all rows (successive halving over rows, as ``HalvingGridSearchCV``).

    ``copy=False`` scales ``X`` in place (the caller gives it up: ``featx fit`` does, after reading
    the file); the default works on one float32 copy.
    """
    from sklearn.pipeline import Pipeline
    from threadpoolctl import threadpool_limits

    from featx.fit.backends import joblib_backend
    from featx.fit.multinomial import block_pool
    from featx.fit.scaling import (
        column_scale,
        fit_standard,
        global_from_standard,
        rescale_inplace,
        transform_inplace,
    )
    from featx.fit.search import cv_paths, refit

    grid = sorted(float(c) for c in (DEFAULT_GRID if grid is None else grid))
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    elif copy:
        X = X.copy()
    y = np.asarray(y)
    t0 = time.perf_counter()
    standard = fit_standard(X)
    fitted = {"standard": standard, "global": global_from_standard(standard)}
    base = scalers[0]
    Z = transform_inplace(X, fitted[base])  # the first scaler in place; the others as factors on fold copies
    factors = {name: None if name == base else (column_scale(fitted[base]) / column_scale(fitted[name])).astype(Z.dtype)
               for name in scalers}
    halve = (len(grid) > HALVING_WINDOW and len(y) >= HALVING_MIN_ROWS) if halving is None else bool(halving)
    names, cands, rung0, inits, holdout, how = list(scalers), grid, [], {}, None, []
    # L-BFGS walks in the variables of each scaler's preconditioner (the same problems; the paths'
    # tolerance bounds the gradient in those variables)
    preconds = _preconditioners(Z, factors, seed=seed, threads=_cores(jobs))
    path_tol = max(tol, PRECOND_PATH_TOL)
    # the multinomial fits' row blocks: one pool of every core, shared by the folds' threads (a fold
    # left alone gets all of it; the results do not depend on it); processes fit on their own
    with block_pool(_cores(jobs) if backend == "threading" else 1) as blocks, threadpool_limits(1), \
            joblib_backend(backend, address=address, jobs=jobs, connect_timeout=connect_timeout):
        if halve:
            sub = _subset(y, seed)
            first = cv_paths(Z[sub], y[sub], grid, factors=factors, cv=cv, seed=seed, jobs=jobs, tol=path_tol,
                             max_iter=max_iter, patience=EARLY_STOP_PATIENCE, pool=blocks, preconds=preconds)
            rung0 = _rows(first, len(sub))
            lead = _best(rung0, scalers)
            i = grid.index(lead["C"])
            p0 = first[lead["scaler"]]
            lo, width = _window(p0, i, len(grid))
            names, cands = [lead["scaler"]], grid[lo : lo + width]
            if width < HALVING_WINDOW:
                how.append(_window_note(grid, p0, i, lo, width))
            if lo < len(p0.Cs):  # the second rung starts from the first rung's solution at its first C
                inits = {lead["scaler"]: p0.mean_coefs[lo]}
            holdout, why = _holdout(y, p0, lo, cv, width)
            how += [f"stopped past the CV peak on the first rung at C={first[n].Cs[-1]:g} ({n})"
                    for n in scalers if first[n].stopped_early]
            if why:
                how.append(why)
        paths = cv_paths(Z, y, cands, factors={n: factors[n] for n in names}, cv=cv, seed=seed, jobs=jobs,
                         tol=path_tol, max_iter=max_iter, inits=inits, patience=EARLY_STOP_PATIENCE,
                         holdout=holdout, pool=blocks, preconds=preconds)
    how += [f"stopped past the CV peak on all rows at C={p.Cs[-1]:g} ({n})" for n, p in paths.items() if p.stopped_early]
    current = base
    results = _rows(paths, len(y))
    best = _best(results, scalers)
    if best["scaler"] != current:
        rescale_inplace(Z, fitted[current], fitted[best["scaler"]])
    # one fit left, its row blocks on every core, one BLAS thread each (2 BLAS threads in one product
    # ran 2x slower on 2 idle cores, 10x on 2 busy ones)
    with block_pool(_cores(jobs)) as blocks, threadpool_limits(1, user_api="blas"):
        lr = refit(Z, y, paths[best["scaler"]], tol=tol, max_iter=max_iter, seed=seed, pool=blocks,
                   precond=preconds.get(best["scaler"]))
    estimator = Pipeline([("scale", fitted[best["scaler"]]), ("lr", lr)])
    seconds = time.perf_counter() - t0
    notes = []
    slow = [name for name, p in paths.items() if not p.converged]
    if slow:
        notes.append(f"lbfgs hit max_iter={max_iter} along the C path ({', '.join(slow)} scaling); raise --max-iter")
    edge = _edge_note(results, best, grid)
    if edge:
        notes.append(edge)
    method = (f"successive halving (a stratified {len(sub)} of the {len(y)} rows, then all rows around the best C); "
              "warm-started C path per fold" if halve else "warm-started C path per fold")
    method += f" at tol {path_tol:g}, winner refit at tol {tol:g}"
    rank = preconds[base].Q.shape[1]
    method += f" (L-BFGS preconditioned by the features' top {rank} principal directions)"
    if how:
        method += "; " + "; ".join(how)
    return SearchResult(
        estimator=estimator,
        best_params={"C": best["C"], "scaler": best["scaler"]},
        cv_score=best["mean_score"],
        cv_results=sorted(rung0, key=lambda r: (r["scaler"], r["C"])) + sorted(results, key=lambda r: (r["scaler"], r["C"])),
        seconds=seconds,
        grid=grid,
        notes=notes,
        method=method,
        holdout=None if holdout is None else int(round(holdout * len(y))),
        path_tol=path_tol,
        precond_rank=rank,
    )


def _preconditioners(Z, factors: dict, *, seed: int, threads: int) -> dict:
    """One :class:`~featx.fit.multinomial.Preconditioner` per scaler (name -> per-column factor of
    ``Z``), on up to ``threads`` threads of one BLAS thread each: the same bits as one after the
    other (0.2 s each on 2,048 features; two classes fit fast enough for that to count)."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from featx.fit.multinomial import Preconditioner

    def one(name):
        return Preconditioner.of(Z, seed=seed, factor=factors[name])

    # one limit held around all of them: each estimate's own limit, entered and left by parallel
    # threads, would restore the process's BLAS threads while another still runs
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(max(1, min(threads, len(factors)))) as ex:
        return dict(zip(factors, ex.map(one, factors)))


def _window(rung0, i: int, n_grid: int) -> tuple[int, int]:
    """The C values the second rung searches around the first rung's best (index ``i`` of a grid of
    ``n_grid``): ``(lo, width)``, the grid's indices ``lo .. lo + width - 1``.

    Each side reaches :data:`HALVING_WINDOW` // 2 steps from the best (2: 5 values in all), or one
    step when the C value two steps away on that side scored at least :data:`PEAK_MARGIN` (0.25
    points) below the best on the first rung: the first-rung curve has clearly fallen there, and
    those outer C values are the second rung's slowest fits (the lowest C starts its path, the
    highest is the least regularized). A side is cut at the grid's end; the window is not shifted."""
    s = rung0.mean_scores
    reach = HALVING_WINDOW // 2

    def side(j: int) -> int:  # j: the index two steps away on that side
        clear = 0 <= j < len(s) and s[i] - s[j] >= PEAK_MARGIN - 1e-9
        return max(1, reach - 1) if clear and reach > 1 else reach

    lo = max(0, i - side(i - reach))
    hi = min(n_grid - 1, i + side(i + reach))
    return lo, hi - lo + 1


def _window_note(grid, rung0, i: int, lo: int, width: int) -> str:
    """What :func:`_window` left out, for the search description."""
    reach = HALVING_WINDOW // 2
    cut = [f"C={grid[j]:g} scored {100 * (rung0.mean_scores[i] - rung0.mean_scores[j]):.2f} points below it"
           for j in (i - reach, i + reach) if 0 <= j < min(len(grid), len(rung0.mean_scores)) and not lo <= j < lo + width]
    why = "; ".join(cut) + " on the first rung" if cut else "the grid ends there"
    return f"{width} C values on all rows, {grid[lo]:g}..{grid[lo + width - 1]:g}, around the first rung's best C={grid[i]:g} ({why})"


def _holdout(y, rung0, lo: int, cv: int, width: int = HALVING_WINDOW) -> tuple[float | None, str | None]:
    """One stratified hold-out (``1 / cv`` of the rows) instead of ``cv`` folds on the second rung,
    when there are :data:`HOLDOUT_MIN_ROWS` rows or more and the hold-out accuracy's standard
    error is below the mean gap between neighbouring C values of the first rung's window."""
    n = len(y)
    if n < HOLDOUT_MIN_ROWS:
        return None, None
    scores = rung0.mean_scores[lo : lo + width]
    if len(scores) < 2:
        return None, None
    gap = float(np.mean(np.abs(np.diff(scores))))
    p = float(rung0.mean_scores.max())
    h = int(round(n / cv))
    se = math.sqrt(max(p * (1 - p), 1e-12) / h)
    if se >= gap:
        return None, None
    return 1.0 / cv, (f"1 stratified hold-out of {h} rows instead of {cv} folds on all rows (its standard "
                      f"error {100 * se:.2f} points < the {100 * gap:.2f}-point gaps between neighbouring C)")


def _subset(y, seed: int):
    """Sorted row indices of a stratified subset for the first halving rung."""
    from sklearn.model_selection import train_test_split

    n = max(HALVING_MIN_SUBSET, int(round(HALVING_FRACTION * len(y))))
    if n >= len(y):
        return np.arange(len(y))
    sub, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    return np.sort(sub)


def _rows(paths: dict, n_rows: int) -> list[dict]:
    return [
        {"scaler": name, "C": c, "rows": n_rows, "mean_score": float(p.mean_scores[i]),
         "std_score": float(p.std_scores[i]), "mean_fit_seconds": float(p.fit_seconds[i]),
         "max_iter_used": int(p.n_iter[:, i].max())}
        for name, p in paths.items() for i, c in enumerate(p.Cs)
    ]


def _best(results: list[dict], scalers) -> dict:
    """The best mean CV score; ties go to the smaller C (stronger regularization), then scaler order."""
    order = {name: k for k, name in enumerate(scalers)}
    top = max(r["mean_score"] for r in results)
    return min((r for r in results if math.isclose(r["mean_score"], top, rel_tol=0, abs_tol=1e-12)),
               key=lambda r: (r["C"], order[r["scaler"]]))
