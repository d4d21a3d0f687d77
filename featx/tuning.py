"""The hyper-parameter search behind ``featx fit``: scaler + logistic regression, tuned by GridSearchCV.

* The model: ``Pipeline([("scale", StandardScaler | GlobalScaler), ("lr", LogisticRegression)])``
  with the lbfgs solver: on scaled features it converges in tens of iterations (multinomial for
  more than two classes). ``newton-cholesky`` and ``newton-cg`` were measured slower at 784-2048
  features (``scripts/bench_fit.py``).
* The search, coarse to fine: ``GridSearchCV`` over every decade of ``C`` from 1e-4 to 1e2 and
  both scalers, then a second ``GridSearchCV`` over the half decades either side of the best
  ``C`` (the best often lies between two decades). Both use the same seeded folds, so scores are
  comparable; ties go to the smaller ``C``; the winner is refit on all training rows. A user
  ``grid`` is searched as given.
* Speed: folds run in parallel (joblib); each fit gets ``cores / parallel fits`` BLAS threads --
  lbfgs' skinny matrix products gain little from threads and lose a lot when threads compete;
  long fits (large ``C``) are dispatched first so the parallel workers finish together.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import numpy as np

from featx.scaling import SCALERS

#: Decades of C searched first (1e-4 ... 1e2).
DEFAULT_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))
#: lbfgs stopping tolerance: 1e-3 scores within 0.3% of 1e-4 in half the time (bench_fit); fits converge.
DEFAULT_TOL = 1e-3
DEFAULT_MAX_ITER = 1000


@dataclasses.dataclass
class SearchResult:
    estimator: object  # the best pipeline, refit on all training rows
    best_params: dict  # {"C": float, "scaler": "standard" | "global"}
    cv_score: float
    cv_results: list[dict]  # one row per (scaler, C) tried: mean/std score, mean fit seconds
    seconds: float
    grid: list[float]
    refined: list[float]
    notes: list[str]


def make_pipeline(
    C: float = 1.0, *, scaler: str = "standard", tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER, seed: int = 42
):
    """A scaler + ``LogisticRegression(solver="lbfgs")`` pipeline."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from featx.scaling import make_scaler

    return Pipeline(
        [
            ("scale", make_scaler(scaler)),
            ("lr", LogisticRegression(C=C, solver="lbfgs", tol=tol, max_iter=max_iter, random_state=seed)),
        ]
    )


def blas_threads(jobs: int | None) -> int:
    """BLAS threads per fit: the cores divided among the parallel fits (joblib's loky rule).

    Measured on 2 busy cores: one lbfgs fit with 2 BLAS threads ran 3-7x slower than with 1.
    """
    from joblib import cpu_count, effective_n_jobs

    return max(1, cpu_count() // max(1, effective_n_jobs(jobs)))


def half_decades(c: float, lo: float, hi: float, tried) -> list[float]:
    """``c / sqrt(10)`` and ``c * sqrt(10)`` inside ``[lo, hi]`` and not tried yet."""
    out = []
    for v in (c / math.sqrt(10), c * math.sqrt(10)):
        if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9) and not any(math.isclose(v, t, rel_tol=1e-6) for t in tried):
            out.append(float(v))
    return out


def pick_best(results: list[dict], scalers) -> dict:
    """The best mean CV score; ties go to the smaller C (stronger regularization), then scaler order."""
    order = {name: i for i, name in enumerate(scalers)}
    top = max(r["mean_score"] for r in results)
    tied = [r for r in results if math.isclose(r["mean_score"], top, rel_tol=0, abs_tol=1e-12)]
    return min(tied, key=lambda r: (r["C"], order.get(r["scaler"], 99)))


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
    refine: bool | None = None,
    cv: int = 3,
    jobs: int | None = -1,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    seed: int = 42,
) -> SearchResult:
    """Find the best scaler and ``C`` by cross-validation; refit it on all of ``(X, y)``.

    ``refine`` (default: on with the default grid) adds a second pass over the half decades
    around the best ``C``.
    """
    from sklearn.base import clone
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from threadpoolctl import threadpool_limits

    from featx.scaling import make_scaler, scaler_name

    refine = grid is None if refine is None else bool(refine)
    grid = [float(c) for c in (DEFAULT_GRID if grid is None else grid)]
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    pipe = make_pipeline(tol=tol, max_iter=max_iter, seed=seed)
    prototypes = {name: make_scaler(name) for name in scalers}

    def run(names: list[str], cs: list[float]) -> list[dict]:
        # large C first: the slowest fits start first and the parallel workers finish together
        gs = GridSearchCV(pipe, {"scale": [prototypes[n] for n in names], "lr__C": sorted(cs, reverse=True)},
                          cv=folds, n_jobs=jobs, refit=False, error_score="raise")
        res = gs.fit(X, y).cv_results_
        return [
            {"scaler": scaler_name(sc), "C": float(c), "mean_score": float(m), "std_score": float(sd),
             "mean_fit_seconds": float(t)}
            for sc, c, m, sd, t in zip(res["param_scale"], res["param_lr__C"], res["mean_test_score"],
                                       res["std_test_score"], res["mean_fit_time"])
        ]

    refined: list[float] = []
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(blas_threads(jobs), user_api="blas"):
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        results = run(list(scalers), grid)
        best = pick_best(results, scalers)
        if refine:
            refined = half_decades(best["C"], min(grid), max(grid), grid)
            if refined:
                results += run([best["scaler"]], refined)
                best = pick_best(results, scalers)
        estimator = clone(pipe).set_params(scale=clone(prototypes[best["scaler"]]), lr__C=best["C"]).fit(X, y)
        seconds = time.perf_counter() - t0
    notes = []
    n_conv = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if n_conv:
        notes.append(f"lbfgs hit max_iter={max_iter} in {n_conv} fit(s); raise --max-iter")
    edge = _edge_note(results, best, grid)
    if edge:
        notes.append(edge)
    return SearchResult(
        estimator=estimator,
        best_params={"C": best["C"], "scaler": best["scaler"]},
        cv_score=best["mean_score"],
        cv_results=sorted(results, key=lambda r: (r["scaler"], r["C"])),
        seconds=seconds,
        grid=grid,
        refined=refined,
        notes=notes,
    )
