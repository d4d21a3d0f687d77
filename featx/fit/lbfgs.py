"""The in-memory solver: ``Pipeline(scaler, LogisticRegression(lbfgs))`` tuned by cross-validation.

:func:`fit_classifier` checks the arrays, splits off the held-out rows, runs the warm-started C
search of :mod:`featx.fit.tuning` and scores the refit winner. scikit-learn is imported inside
the functions: importing this module stays cheap.
"""

from __future__ import annotations

import time

import numpy as np

from featx.constants import DEFAULT_CONNECT_TIMEOUT
from featx.errors import FeatxError
from featx.fit.result import FitResult, full_proba
from featx.fit.search import DEFAULT_TEST_SIZE, SCALERS, check_grid
from featx.fit.tuning import DEFAULT_BACKEND, DEFAULT_CV, DEFAULT_MAX_ITER, DEFAULT_TOL


def _check_xy(X, y, name: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise FeatxError(f"{name}: expected a 2-D feature matrix (N, D). Received shape {X.shape}")
    if len(X) != len(y):
        raise FeatxError(f"{name}: {len(X)} feature rows but {len(y)} labels")
    if not np.isfinite(X).all():
        raise FeatxError(f"{name}: features contain NaN or infinite values; re-extract them")
    return X, y


def _split_rows(X, y, test_size, seed: int, consume: bool):
    """Stratified ``(X_train, X_test, y_train, y_test)``; with ``consume`` the training rows are
    compacted into the front of ``X`` in place (only the test rows are copied)."""
    from sklearn.model_selection import train_test_split

    try:
        i_train, i_test = train_test_split(
            np.arange(len(y)), test_size=test_size if test_size < 1 else int(test_size), stratify=y, random_state=seed
        )
    except ValueError as e:
        raise FeatxError(f"cannot make a stratified --test-size split ({e}): use more rows or --test FILE") from None
    i_train.sort()
    i_test.sort()
    X_test = X[i_test]
    if not consume:
        return X[i_train], X_test, y[i_train], y[i_test]
    # row i_train[k] >= k moves to k; chunks in ascending order never overwrite a row still to be read
    step = 4096
    for a in range(0, len(i_train), step):
        rows = i_train[a : a + step]
        X[a : a + len(rows)] = X[rows]
    return X[: len(i_train)], X_test, y[i_train], y[i_test]


def fit_classifier(
    X,
    y,
    *,
    label_names,
    X_test=None,
    y_test=None,
    test_size: float = DEFAULT_TEST_SIZE,
    seed: int = 42,
    grid=None,
    cv: int = DEFAULT_CV,
    jobs: int | None = -1,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    scalers=SCALERS,
    backend: str = DEFAULT_BACKEND,
    address: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    copy: bool = True,
    halving: bool | None = None,
) -> FitResult:
    """Tune ``C`` and the scaler by ``cv``-fold cross-validation along a warm-started ``C`` path
    (:func:`featx.fit.tuning.search`); score the refit best model on a held-out set.

    ``scalers`` lists the candidates (``"standard"``, ``"global"``); cross-validation picks one.
    ``grid`` defaults to :data:`featx.fit.search.DEFAULT_GRID` (decades and half decades 1e-4..1e2).
    ``backend`` / ``address``: where the folds run (:mod:`featx.fit.backends`); a Ray ``address``
    that does not answer within ``connect_timeout`` seconds is a one-line error.
    ``copy=False`` lets the fit reuse ``X``'s memory (it is overwritten): no copy of the features.
    ``halving``: successive halving over rows (default: from 6,000 training rows; :func:`featx.fit.tuning.search`).

    The held-out set is ``(X_test, y_test)`` when given, else a stratified ``test_size`` split
    (fraction or count) of ``(X, y)`` drawn with ``seed``.
    """
    from featx.fit.tuning import search
    from featx.results.metrics import score

    label_names = [str(n) for n in label_names]
    X, y = _check_xy(X, y, "features")
    n_classes = len(label_names)
    if (y < 0).any() or (y >= n_classes).any():
        raise FeatxError(f"labels must index the {n_classes} label names; got values {y.min()}..{y.max()}")
    if grid is not None:
        grid = check_grid(grid)
    if cv < 2:
        raise FeatxError(f"cv must be at least 2. Received: cv={cv}")
    scalers = [str(x) for x in ([scalers] if isinstance(scalers, str) else scalers)]
    if not scalers or any(x not in SCALERS for x in scalers):
        raise FeatxError(f"scalers must be among {', '.join(SCALERS)}. Received: scalers={scalers}")

    if X_test is None:
        if not (0 < test_size < 1 or (test_size >= 1 and float(test_size).is_integer())):
            raise FeatxError(f"test_size must be a fraction in (0, 1) or a whole count. Received: test_size={test_size}")
        X_train, X_test, y_train, y_test = _split_rows(X, y, test_size, seed, consume=not copy)
        owned = True  # X_train is a fresh array or X's own memory given up by the caller
        split = "stratified split"
    else:
        X_train, y_train = X, y
        X_test, y_test = _check_xy(X_test, y_test, "test features")
        if X_test.shape[1] != X.shape[1]:
            raise FeatxError(f"test features have {X_test.shape[1]} columns, training features {X.shape[1]}")
        owned = not copy
        split = "test file"

    counts = np.bincount(y_train, minlength=n_classes)
    present = counts[counts > 0]
    if len(present) < 2:
        raise FeatxError(f"need at least 2 classes to fit a classifier; the training rows hold {len(present)}")
    if present.min() < cv:
        raise FeatxError(
            f"cv={cv} needs at least {cv} training rows per class; the smallest class has {present.min()}: "
            "use fewer folds or more data"
        )

    found = search(
        X_train, y_train, scalers=scalers, grid=grid, cv=cv, jobs=jobs, tol=tol, max_iter=max_iter, seed=seed,
        backend=backend, address=address, connect_timeout=connect_timeout, copy=not owned, halving=halving,
    )
    best = found.estimator
    t1 = time.perf_counter()
    proba = full_proba(best, X_test, n_classes)
    predict_seconds = time.perf_counter() - t1
    scores = score(y_test, proba, label_names)
    config = {
        "grid": found.grid,
        "search": found.method,
        "holdout_rows": found.holdout,
        "path_tol": found.path_tol,
        "precond_rank": found.precond_rank,
        "cv": cv,
        "jobs": jobs,
        "backend": backend,
        "seed": seed,
        "test": split,
        "test_size": test_size if split == "stratified split" else None,
        "solver": "lbfgs",
        "tol": tol,
        "max_iter": max_iter,
        "scalers": scalers,
    }
    return FitResult(
        estimator=best,
        label_names=label_names,
        best_params=found.best_params,
        cv_score=found.cv_score,
        cv_results=found.cv_results,
        scores=scores,
        fit_seconds=found.seconds,
        predict_seconds=predict_seconds,
        n_train=len(X_train),
        n_test=len(X_test),
        feature_dim=int(X.shape[1]),
        warnings=found.notes,
        config=config,
    )
