"""Label issues: out-of-fold probabilities from ``featx fit``'s model, then confident learning.

1. The model is ``featx fit``'s pipeline (a scaler + ``LogisticRegression``, :func:`featx.fit.make_pipeline`)
   at a given ``C`` and scaler: the classifier's own (``--classifier``), else the ones a quick
   search picks (:func:`featx.fit.search_classifier` over :data:`QUICK_GRID`).
2. Out-of-fold probabilities: scikit-learn's ``cross_val_predict`` over the folds ``featx fit``
   searches on (``StratifiedKFold(cv, shuffle=True, random_state=seed)``), so every row is
   scored by a model that never saw it.
3. ``cleanlab.filter.find_label_issues`` (confident learning), ranked by self-confidence: the
   probability the out-of-fold model gives the row's own label, lowest first.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from featx.errors import FeatxError

#: C values the quick search tries when no classifier is given (decades; the fit's full grid has half decades).
QUICK_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
CLEANLAB_INSTALL = 'pip install "featx[inspect]"'


@dataclasses.dataclass
class LabelIssues:
    """Rows flagged by confident learning, most suspicious first (indices into the rows given)."""

    indices: np.ndarray  # flagged rows, ranked (lowest self-confidence first)
    suggested: np.ndarray  # (N,) the out-of-fold model's label for every row
    quality: np.ndarray  # (N,) self-confidence: out-of-fold probability of the given label
    proba: np.ndarray  # (N, n_classes) out-of-fold probabilities
    params: dict  # {"C": ..., "scaler": ..., "source": "classifier" | "quick search", "cv": ...}
    seconds: dict  # {"search": s, "out_of_fold": s, "cleanlab": s}


def check_rows(y: np.ndarray, label_names: list[str], cv: int, what: str = "the training rows") -> None:
    """At least two classes, and ``cv`` rows of each class present (the folds are stratified)."""
    counts = np.bincount(y, minlength=len(label_names))
    present = np.nonzero(counts)[0]
    if len(present) < 2:
        only = label_names[present[0]] if len(present) else "none"
        raise FeatxError(f"{what} hold {len(present)} class ({only!r}): label issues need at least 2 classes")
    small = [label_names[k] for k in present if counts[k] < cv]
    if small:
        raise FeatxError(
            f"cv={cv} needs at least {cv} rows of each class in {what}; "
            f"{len(small)} class(es) have fewer ({', '.join(map(repr, small[:5]))}): use fewer folds or more data"
        )


def quick_params(X, y, *, cv: int, seed: int, jobs: int | None) -> dict:
    """``C`` and scaler by ``featx fit``'s search over :data:`QUICK_GRID` (one float32 copy of ``X``)."""
    from featx.fit import search_classifier

    found = search_classifier(X, y, grid=QUICK_GRID, cv=cv, jobs=jobs, seed=seed)
    return {"C": float(found.best_params["C"]), "scaler": found.best_params["scaler"], "cv_score": found.cv_score}


def out_of_fold_proba(X, y, n_classes: int, *, C: float, scaler: str, cv: int, seed: int, jobs: int | None = -1,
                      tol: float | None = None, max_iter: int | None = None) -> np.ndarray:
    """``(N, n_classes)`` probabilities, each row's from the fold model that did not train on it."""
    from joblib import cpu_count, effective_n_jobs
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    from featx.fit import DEFAULT_MAX_ITER, DEFAULT_TOL, joblib_backend, make_pipeline

    model = make_pipeline(C, scaler=scaler, tol=tol or DEFAULT_TOL, max_iter=max_iter or DEFAULT_MAX_ITER, seed=seed)
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    parallel = min(cv, effective_n_jobs(jobs))
    with threadpool_limits(max(1, cpu_count() // parallel), user_api="blas"), joblib_backend("threading", jobs=jobs):
        proba = cross_val_predict(model, X, y, cv=folds, method="predict_proba", n_jobs=parallel)
    present = np.unique(y)
    if proba.shape[1] == n_classes:
        return proba
    out = np.zeros((len(y), n_classes), dtype=proba.dtype)
    out[:, present] = proba
    return out


def find_issues(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ranked flagged indices, self-confidence of every row)`` by cleanlab's confident learning."""
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError:
        raise FeatxError(f"label issues need cleanlab, which is not installed: {CLEANLAB_INSTALL}") from None
    present = np.unique(y)
    # cleanlab wants every column a class with examples: classes missing from the rows are dropped
    remap = np.full(proba.shape[1], -1, dtype=np.int64)
    remap[present] = np.arange(len(present))
    labels = remap[y]
    p = proba[:, present].astype(np.float64)
    p /= np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
    ranked = find_label_issues(labels, p, return_indices_ranked_by="self_confidence", n_jobs=1)
    quality = get_label_quality_scores(labels, p, method="self_confidence")
    return np.asarray(ranked, dtype=np.int64), np.asarray(quality, dtype=np.float64)


def label_issues(X, y, label_names: list[str], *, params: dict | None = None, cv: int = 3, seed: int = 42,
                 jobs: int | None = -1, proba: np.ndarray | None = None) -> LabelIssues:
    """Label issues of ``(X, y)``: out-of-fold probabilities at ``params`` (``{"C", "scaler"}``;
    ``None``: a quick search picks them), then confident learning. ``proba``: out-of-fold
    probabilities already computed (skips the fits)."""
    import time

    y = np.asarray(y, dtype=np.int64)
    check_rows(y, label_names, cv)
    seconds = {"search": 0.0, "out_of_fold": 0.0, "cleanlab": 0.0}
    if params is None:
        t0 = time.perf_counter()
        params = {**quick_params(X, y, cv=cv, seed=seed, jobs=jobs), "source": "quick search"}
        seconds["search"] = time.perf_counter() - t0
    params = {"source": "classifier", **params, "cv": cv, "seed": seed}
    if proba is None:
        t0 = time.perf_counter()
        proba = out_of_fold_proba(X, y, len(label_names), C=params["C"], scaler=params["scaler"], cv=cv, seed=seed,
                                  jobs=jobs)
        seconds["out_of_fold"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ranked, quality = find_issues(y, proba)
    seconds["cleanlab"] = time.perf_counter() - t0
    return LabelIssues(ranked, proba.argmax(axis=1), quality, proba, params, seconds)
