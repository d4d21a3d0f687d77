"""Cross-validated search for ``C`` that reuses work: one warm-started regularization path per fold.

The book refits ``LogisticRegression`` from zero for every ``C`` and every fold
(``GridSearchCV``). Here each fold walks the grid from the smallest ``C`` (strongest
regularization, fastest to fit) upwards with warm starts, as ``LogisticRegressionCV`` does: every
fit starts from the previous ``C``'s solution, so later fits need a fraction of the iterations.
The fits minimize ``LogisticRegression``'s own objective with its L-BFGS-B options
(:mod:`featx.fit.multinomial`: float32 rows, where ``LogisticRegressionCV`` copies them to float64;
preconditioned by the features' principal directions), and are scored with plain accuracy, as the
book's search is.

* Folds: ``StratifiedKFold(cv, shuffle=True, random_state=seed)``; the folds run in parallel
  through joblib, under the backend the caller chose (``threading`` by default: no process copies
  of the features; ``loky``; or ``ray`` via :mod:`featx.fit.backends`).
* The winner: the best mean fold accuracy, ties to the smaller ``C``; refit on all training rows
  warm-started from the mean of the fold solutions at that ``C``.
* Deterministic: lbfgs is deterministic, BLAS runs one thread per parallel fit.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# The constants below are what ``featx fit``'s options offer and default to; this module imports
# nothing heavy at the top (NumPy and scikit-learn load inside the functions), so ``--help`` is fast.

#: Searched when no grid is given: decades and half decades of C from 1e-4 to 1e2.
DEFAULT_GRID = tuple(10 ** (k / 2) for k in range(-8, 5))


def check_grid(grid) -> list[float]:
    """The C values of ``grid`` as floats: at least one, each finite and positive (C = inf is no
    regularization, NaN no value at all). Raises a :class:`~featx.errors.ParameterError` naming ``grid``."""
    from featx.errors import ParameterError

    try:
        values = [float(c) for c in grid]
    except (TypeError, ValueError):
        raise ParameterError("grid", f"grid must be numbers. Received: grid={grid!r}") from None
    if not values or any(not math.isfinite(c) or c <= 0 for c in values):
        raise ParameterError("grid", f"grid needs finite, positive C values. Received: grid={list(grid)!r}")
    return values
#: lbfgs stopping tolerance (measured by scripts/bench_fit.py: 1e-3 matches 1e-4 accuracy in far less time).
DEFAULT_TOL = 1e-3
#: lbfgs iteration cap per fit along the path.
DEFAULT_MAX_ITER = 1000
#: Cross-validation folds.
DEFAULT_CV = 3
#: Feature scalers cross-validation chooses among (:mod:`featx.fit.scaling`).
SCALERS = ("standard", "global")
#: ``scaler`` choices: one scaler, or ``auto`` (cross-validation picks among :data:`SCALERS`).
SCALER_CHOICES = ("auto", *SCALERS)
DEFAULT_SCALER = "auto"
#: Held-out rows when no test file is given (fraction, or a whole count).
DEFAULT_TEST_SIZE = 0.25
#: Solvers: ``lbfgs`` (in memory, this module), ``sgd`` (out of core, :mod:`featx.fit.sgd`), or
#: ``auto``: lbfgs when the features fit in memory, else sgd (:func:`featx.fit.sgd.choose_solver`).
SOLVERS = ("auto", "lbfgs", "sgd")
DEFAULT_SOLVER = "auto"
#: Successive halving (rows): all scalers x the whole grid on a stratified HALVING_FRACTION of the
#: training rows (at least HALVING_MIN_SUBSET), then the best scaler on all rows over the
#: HALVING_WINDOW grid values around the best C. Used when there are HALVING_MIN_ROWS rows or more
#: and the grid is longer than the window.
#: (A sixth of the rows, at least 1,500, measured 0.68-0.94x the search's CPU on the seven tuning
#: sets, but on bench_fit's held-out set it chose the standard scaler where a quarter chooses the
#: global one: -1.1 points. Kept at a quarter.)
HALVING_FRACTION = 0.25
HALVING_MIN_SUBSET = 2000
HALVING_MIN_ROWS = 6000
HALVING_WINDOW = 5
#: The second rung reaches 2 grid steps each side of the first rung's best C, or one step on a side
#: where the C value two steps away scored at least this much accuracy below the best (0.25 points):
#: the first-rung curve has clearly fallen there, and those outer C values would be the second rung's
#: slowest fits (the lowest C starts its path, the highest is the least regularized).
PEAK_MARGIN = 0.0025
#: L-BFGS tolerance along the C paths of the search (at least ``--tol``); only the winner is refit
#: at ``--tol``. L-BFGS walks in preconditioned variables
#: (:class:`featx.fit.multinomial.Preconditioner`) and the tolerance bounds the gradient there.
#: Measured on bench_fit's seven multiclass tuning sets: 5e-3 took 0.27-0.8x the row evaluations
#: of scikit-learn's unpreconditioned paths at 2e-3 (their tolerance before, chosen in session 3)
#: on six of them (1.25x on the 100-class set); 1e-2 took fewer still, but in one of two runs it
#: chose a C on digits784 that scored 0.5 points lower on the test rows. On six binary tuning sets
#: (session 6) 5e-3 took 0.27-0.6x the row evaluations of scikit-learn's binary paths at 2e-3.
PRECOND_PATH_TOL = 5e-3
#: A fold's path stops once this many consecutive C values scored below its best: the accuracy
#: has passed its peak, and the larger C values (weaker regularization) are the slow fits. (It was
#: 3; 2 measured the same C and accuracy on bench_fit's held-out set, and within 0.16 points on the others.)
EARLY_STOP_PATIENCE = 2
#: One stratified hold-out (the size of one fold) replaces the ``cv`` folds on all rows when its
#: accuracy's standard error is below the gaps between neighbouring C values on the first rung.
HOLDOUT_MIN_ROWS = 20000
#: joblib backends the folds can run under.
BACKENDS = ("threading", "loky", "ray")
DEFAULT_BACKEND = "threading"


@dataclasses.dataclass
class PathResult:
    """Cross-validated scores along the C path of one (already scaled) feature matrix."""

    Cs: list[float]
    fold_scores: np.ndarray  # (folds, len(Cs)) accuracy
    mean_scores: np.ndarray  # (len(Cs),)
    std_scores: np.ndarray
    fit_seconds: np.ndarray  # (len(Cs),) mean seconds per fold fit
    n_iter: np.ndarray  # (folds, len(Cs))
    best_index: int
    coef_init: tuple[np.ndarray, np.ndarray]  # mean fold (coef_, intercept_) at the best C
    converged: bool
    mean_coefs: list = dataclasses.field(default_factory=list)  # mean fold (coef_, intercept_) per C
    planned: int = 0  # C values the path was given (more than len(Cs) when every fold stopped early)

    @property
    def stopped_early(self) -> bool:
        return self.planned > len(self.Cs)

    @property
    def best_C(self) -> float:
        return self.Cs[self.best_index]

    @property
    def best_score(self) -> float:
        return float(self.mean_scores[self.best_index])


def make_lr(C: float = 1.0, *, tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER, seed: int = 42):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, solver="lbfgs", tol=tol, max_iter=max_iter, random_state=seed)


def fold_path(X, y, train, test, Cs, *, tol: float, max_iter: int, factor=None, init=None,
              patience: int | None = None, pool=None, precond=None):
    """Fit one fold along ``Cs`` (ascending) with warm starts; accuracy on the held-out rows per C.

    ``X[train]`` is one float32 copy of the fold's training rows (the fit needs them contiguous);
    ``factor`` (per column) rescales that copy in place: another scaler of the same features.
    ``init`` (``coef_``, ``intercept_``) starts the first fit there instead of at zero (used when its
    shape fits this fold's classes). ``patience``: stop the path once that many consecutive ``C``
    values scored below the fold's best (the accuracy has passed its peak; the larger ``C`` values
    are the slow fits); ``None`` walks the whole path. The fits are
    :class:`featx.fit.multinomial.WarmPath`'s (its row blocks on ``pool``'s threads when given;
    one logit for two classes); ``precond``: its :class:`~featx.fit.multinomial.Preconditioner`
    (``None``: plain L-BFGS). No seed: the fits are deterministic.
    """
    import numpy as np

    from featx.fit.multinomial import WarmPath

    Xtr, ytr = X[train], y[train]
    if factor is not None:
        Xtr *= factor
    yva = y[test]

    def accuracy(model) -> float:  # the held-out rows in chunks: no copy of the whole validation fold
        right = 0
        for a in range(0, len(test), 4096):
            xv = X[test[a : a + 4096]]
            if factor is not None:
                xv *= factor
            right += int(np.sum(model.predict(xv) == yva[a : a + 4096]))
        return right / max(1, len(test))

    n_cls = len(np.unique(ytr))
    start = None
    if init is not None and init[0] is not None and init[0].shape == ((1 if n_cls == 2 else n_cls), Xtr.shape[1]):
        start = (init[0].astype(Xtr.dtype), init[1].astype(Xtr.dtype))
    model = WarmPath(Xtr, ytr, tol=tol, max_iter=max_iter, start=start, pool=pool, precond=precond)

    def fit(C: float) -> int:
        if pool is None:
            return model.fit(C)
        with pool.fitting():
            return model.fit(C)

    scores, coefs, iters, secs = [], [], [], []
    converged = True
    best, below = -1.0, 0
    for C in Cs:
        t0 = time.perf_counter()
        n_iter = fit(C)
        converged &= n_iter < max_iter
        secs.append(time.perf_counter() - t0)
        scores.append(accuracy(model))
        coefs.append((model.coef_.copy(), model.intercept_.copy()))
        iters.append(n_iter)
        if scores[-1] > best:
            best, below = scores[-1], 0
        elif scores[-1] < best:
            below += 1
            if patience is not None and below >= patience:
                break
    return scores, coefs, iters, secs, converged, model.classes_


def make_splits(y, *, cv: int, seed: int, holdout: float | None = None) -> list:
    """``cv`` stratified folds, or one stratified hold-out of a ``holdout`` share of the rows."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

    if holdout is not None:
        split = StratifiedShuffleSplit(n_splits=1, test_size=holdout, random_state=seed)
    else:
        split = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    return list(split.split(np.zeros(len(y)), y))


def cv_paths(X, y, Cs, *, factors: dict | None = None, cv: int = DEFAULT_CV, seed: int = 42, jobs: int | None = -1,
             tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER, inits: dict | None = None,
             patience: int | None = None, holdout: float | None = None, pool=None,
             preconds: dict | None = None) -> dict[str, PathResult]:
    """Cross-validated accuracy along the ascending ``Cs`` path, one :class:`PathResult` per entry of
    ``factors`` (name -> per-column factor applied to ``X``'s fold copies, or ``None`` for ``X`` as
    it is). Every (factor, fold) pair is one joblib task, all dispatched together.

    ``inits`` (name -> (coef, intercept)): where each path starts (:func:`fold_path`);
    ``patience``: early stop of each fold's path past its peak; ``holdout``: one stratified
    hold-out of that share of the rows instead of ``cv`` folds; ``pool``: the threads the folds'
    multinomial fits share for their row blocks (threading backend only: it does not pickle);
    ``preconds`` (name -> :class:`~featx.fit.multinomial.Preconditioner`): the multinomial fits'
    change of variables for each entry of ``factors``."""
    from joblib import Parallel, delayed

    factors = {"": None} if factors is None else factors
    inits, preconds = inits or {}, preconds or {}
    Cs = sorted(float(c) for c in Cs)
    folds = make_splits(y, cv=cv, seed=seed, holdout=holdout)
    tasks = [(name, tr, te) for name in factors for tr, te in folds]
    outs = Parallel(n_jobs=jobs)(  # a path's convergence is read from its iterations, not from warnings
        delayed(fold_path)(X, y, tr, te, Cs, tol=tol, max_iter=max_iter, factor=factors[name],
                           init=inits.get(name), patience=patience, pool=pool, precond=preconds.get(name))
        for name, tr, te in tasks
    )
    return {name: _summarize(Cs, [o for (n, _, _), o in zip(tasks, outs) if n == name]) for name in factors}


def cv_path(X, y, Cs, **kw) -> PathResult:
    """:func:`cv_paths` for ``X`` as it is."""
    return cv_paths(X, y, Cs, **kw)[""]


def _summarize(Cs, out) -> PathResult:
    """One :class:`PathResult` from the folds of one path; folds stopped early cut every fold's
    path to the shortest (a C counts only when every fold scored it)."""
    import numpy as np

    n = min(len(o[0]) for o in out)
    planned, Cs = len(Cs), list(Cs[:n])
    scores = np.array([o[0][:n] for o in out])
    mean = scores.mean(axis=0)
    top = mean.max()
    best = int(min(i for i, m in enumerate(mean) if math.isclose(m, top, rel_tol=0, abs_tol=1e-12)))
    classes = [o[5] for o in out]
    if all(np.array_equal(c, classes[0]) for c in classes):
        coef = np.mean([o[1][best][0] for o in out], axis=0)
        intercept = np.mean([o[1][best][1] for o in out], axis=0)
        coefs = [(np.mean([o[1][i][0] for o in out], axis=0), np.mean([o[1][i][1] for o in out], axis=0))
                 for i in range(n)]
    else:  # a fold missed a class: the shapes differ, refit from zero
        coef = intercept = None
        coefs = [(None, None)] * n
    return PathResult(
        Cs=Cs,
        fold_scores=scores,
        mean_scores=mean,
        std_scores=scores.std(axis=0),
        fit_seconds=np.array([o[3][:n] for o in out]).mean(axis=0),
        n_iter=np.array([o[2][:n] for o in out]),
        best_index=best,
        coef_init=(coef, intercept),
        converged=all(o[4] for o in out),
        mean_coefs=coefs,
        planned=planned,
    )


def refit(X, y, path: PathResult, *, tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER, seed: int = 42,
          pool=None, precond=None):
    """The best ``C`` refit on all rows, warm-started from the mean fold solution.

    :func:`featx.fit.multinomial.fit`: scikit-learn's objective and optimizer (one logit for two
    classes), the row blocks on ``pool``'s threads (the one fit left uses every core)."""
    import numpy as np

    from featx.fit import multinomial

    coef, intercept = path.coef_init
    classes = np.unique(y)
    lr = make_lr(path.best_C, tol=tol, max_iter=max_iter, seed=seed)
    lr.coef_, lr.intercept_, n_iter = multinomial.fit(X, y, classes, path.best_C, tol=tol, max_iter=max_iter,
                                                      coef=coef, intercept=intercept, pool=pool, precond=precond)
    lr.classes_, lr.n_features_in_, lr.n_iter_ = classes, X.shape[1], np.array([n_iter], np.int32)
    if n_iter >= max_iter:
        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(f"lbfgs reached max_iter={max_iter} refitting the best C: raise --max-iter",
                      ConvergenceWarning, stacklevel=2)
    return lr
