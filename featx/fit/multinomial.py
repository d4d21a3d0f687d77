"""scikit-learn's ``LogisticRegression(solver="lbfgs")`` objective (multinomial, or binomial for two
classes), evaluated over row blocks on threads.

The same problem as ``LogisticRegression`` (the mean multinomial log loss plus
``||W||^2 / (2 C n)``, the intercepts not penalised) minimized by the same optimizer
(``scipy.optimize.minimize(method="L-BFGS-B")`` with the options scikit-learn passes: ``gtol=tol``,
``maxls=50``, ``ftol=64 eps``). Two things differ, both measured on 11,250 x 2,048 Fashion-MNIST
CNN features:

* one pass over the rows per evaluation: each block of :data:`BLOCK_ROWS` rows is multiplied
  by the weights and, while it is still in cache, its gradient is formed (about 10% less time per
  evaluation than scikit-learn's two passes over the whole matrix, on one core);
* the blocks run on ``threads`` threads (one BLAS thread each): one fit uses every core, 1.5x
  faster per evaluation on 2 cores, where two BLAS threads in one product ran 2x slower.

A :class:`Preconditioner` (the search's fits use one) changes the variables L-BFGS walks in so
that the problem is about equally curved along every direction: on six of bench_fit's seven
tuning sets the search needed 0.27-0.8x the row evaluations (1.25x on the 100-class set).

The blocks' partial sums are added in block order, so a fit gives the same bits on any number of
threads: fits running at once (the search's folds) share one pool of threads, and a fit left alone
(the last fold, the refit) gets all of them without changing its result. Two classes fit one
logit, as scikit-learn's binary ``LogisticRegression`` (its ``HalfBinomialLoss``); on six binary
tuning sets the preconditioned search needed 0.27-0.6x the row evaluations of scikit-learn's own
binary fits.
"""

from __future__ import annotations

import contextlib
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Rows per block: a 512 x 2,048 float32 block (4 MB) stays in the L2/L3 cache between its two products.
BLOCK_ROWS = 512
#: The preconditioner's principal directions of the features, and the rows it estimates them from
#: (0.16 s per scaler on 2,048 features; rank 64 or 256 and 4,096 rows measured about the same
#: number of evaluations on bench_fit's tuning sets).
PRECOND_RANK = 128
PRECOND_ROWS = 2048
#: The curvature the preconditioner assumes per unit of feature variance, times the classes: the
#: softmax's own curvature is at most 1 / k per class and falls as the rows are fitted. (Measured on
#: 11,250 x 2,048 Fashion-MNIST CNN features: 0.1 / k reached the plain fit's loss in the fewest
#: evaluations, 12-15 against 57-81; 0.03 / k, 0.3 / k and 1 / k took more.)
PRECOND_CURVATURE = 0.1


def _blocks(n: int) -> list[tuple[int, int]]:
    return [(a, min(a + BLOCK_ROWS, n)) for a in range(0, n, BLOCK_ROWS)]


def objective(X, y, C: float, n_classes: int, *, pool: BlockPool | None = None):
    """``f(w) -> (loss, gradient)`` for ``w = [W.ravel() (k x d), b (k)]`` in float64, as
    scikit-learn's ``LinearModelLoss`` with ``HalfMultinomialLoss``; ``y`` holds class indices
    ``0 .. n_classes - 1``; ``X`` float32 or float64 (the products run in its dtype). Two classes:
    one logit (``k = 1`` row of ``W``), scikit-learn's ``HalfBinomialLoss``, as its binary
    ``LogisticRegression``."""
    n, d = X.shape
    k = 1 if n_classes == 2 else n_classes
    lam = 1.0 / (C * n)
    blocks = _blocks(n)

    def binomial(a: int, e: int, W, b):
        Xb, yb = X[a:e], y[a:e]
        z = (Xb @ W)[:, 0] + b[0]
        loss = float(np.logaddexp(0, z).sum(dtype=np.float64) - (z * yb).sum(dtype=np.float64))
        r = (0.5 * (1 + np.tanh(0.5 * z)) - yb).astype(X.dtype)[:, None]  # sigmoid(z) - y
        return loss, Xb.T @ r, r.sum(axis=0, dtype=np.float64)

    def block(a: int, e: int, W, b):
        if k == 1:
            return binomial(a, e, W, b)
        Xb, yb, rows = X[a:e], y[a:e], np.arange(e - a)
        R = Xb @ W
        R += b
        R -= R.max(axis=1, keepdims=True)
        loss = -float(R[rows, yb].sum(dtype=np.float64))
        np.exp(R, out=R)
        s = R.sum(axis=1, keepdims=True)
        loss += float(np.log(s).sum(dtype=np.float64))
        R /= s
        R[rows, yb] -= 1
        return loss, Xb.T @ R, R.sum(axis=0, dtype=np.float64)

    def f(w):
        W = np.ascontiguousarray(w[: k * d].reshape(k, d).T, dtype=X.dtype)
        b = w[k * d :].astype(X.dtype)
        if pool is None or not pool.idle():
            parts = [block(a, e, W, b) for a, e in blocks]
        else:
            parts = list(pool.map(lambda ab: block(ab[0], ab[1], W, b), blocks))
        loss = sum(p[0] for p in parts) / n  # in block order: the same bits on any number of threads
        G = parts[0][1].astype(np.float64)
        for p in parts[1:]:
            G += p[1]
        gb = parts[0][2].copy()
        for p in parts[1:]:
            gb += p[2]
        coef = w[: k * d]
        loss += 0.5 * lam * float(coef @ coef)
        grad = np.empty_like(w)
        grad[: k * d] = (G / n).T.ravel() + lam * coef
        grad[k * d :] = gb / n
        return loss, grad

    return f


class Preconditioner:
    """A change of variables that makes the objective round: ``W = V P`` (``W``, ``V``: k x d) with
    ``P = s0 (I - Q Q^T) + Q diag(s) Q^T``, ``Q`` (d x r) the features' top ``r`` principal
    directions. ``s_j = 1 / sqrt(c lambda_j + 1 / (C n))`` (``c`` = :data:`PRECOND_CURVATURE` / k,
    k = 2 for one logit; ``lambda_j`` the variance along direction ``j``; ``s0`` the same for the
    mean variance of the other directions): in ``V`` the objective's curvature is about 1 along
    every direction, where in ``W`` it spans the features' variances (345 to 0.04 on Fashion-MNIST
    CNN features) plus the penalty.

    The problem does not change: the same loss and penalty of the same ``W``, only the variables
    L-BFGS walks in, so the minimum is the same model. What changes is the meaning of ``tol``: it
    bounds the gradient in ``V``, which measures the distance to the minimum on every direction
    alike (in ``W`` a small gradient along a low-variance direction can still be far from it)."""

    def __init__(self, Q: np.ndarray, eig: np.ndarray, tail: float):
        self.Q, self.eig, self.tail = Q, eig, float(tail)

    @classmethod
    def of(cls, X, *, rank: int = PRECOND_RANK, rows: int = PRECOND_ROWS, seed: int = 0, factor=None) -> Preconditioner:
        """Estimated from ``rows`` evenly spaced rows of ``X`` (centred features), each column times
        ``factor`` when given; one BLAS thread (the same bits on any machine load)."""
        from sklearn.utils.extmath import randomized_svd
        from threadpoolctl import threadpool_limits

        n, d = X.shape
        S = np.asarray(X[np.linspace(0, n - 1, min(n, rows)).astype(int)], np.float32)
        if factor is not None:
            S = S * np.asarray(factor, np.float32)
        r = max(1, min(rank, d - 1, len(S) - 1))
        with threadpool_limits(1, user_api="blas"):
            _, sv, Vt = randomized_svd(S, r, n_iter=2, random_state=seed)
            total = float(np.einsum("ij,ij->", S, S, dtype=np.float64))
        eig = sv.astype(np.float64) ** 2 / len(S)
        tail = max(total / len(S) - float(eig.sum()), 0.0) / max(1, d - r)
        Q = np.linalg.qr(Vt.T.astype(np.float64))[0]  # orthonormal in float64: the two maps invert each other
        return cls(np.ascontiguousarray(Q), eig, tail)

    def scales(self, C: float, n: int, k: int) -> tuple[np.ndarray, float]:
        c, lam = PRECOND_CURVATURE / max(2, k), 1.0 / (C * n)
        return 1.0 / np.sqrt(c * self.eig + lam), 1.0 / math.sqrt(c * self.tail + lam)

    @staticmethod
    def _apply(M, Q, s, s0):  # M (k x d) @ P, P = s0 (I - Q Q^T) + Q diag(s) Q^T (symmetric)
        return s0 * M + ((M @ Q) * (s - s0)) @ Q.T

    def wrap(self, f, C: float, n: int, k: int, d: int):
        """``(g, to_v, to_w)``: the objective in ``v = [V.ravel(), b]`` and the maps between the two."""
        s, s0 = self.scales(C, n, k)
        Q, kd = self.Q, k * d

        def to_w(v):
            return np.concatenate([self._apply(v[:kd].reshape(k, d), Q, s, s0).ravel(), v[kd:]])

        def to_v(w):
            return np.concatenate([self._apply(w[:kd].reshape(k, d), Q, 1 / s, 1 / s0).ravel(), w[kd:]])

        def g(v):
            loss, gw = f(to_w(v))
            gv = np.empty_like(gw)
            gv[:kd] = self._apply(gw[:kd].reshape(k, d), Q, s, s0).ravel()  # the chain rule: dW/dV = P
            gv[kd:] = gw[kd:]
            return loss, gv

        return g, to_v, to_w


def fit(X, y, classes, C: float, *, tol: float, max_iter: int, coef=None, intercept=None,
        pool: BlockPool | None = None, precond: Preconditioner | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimize the objective for labels ``y`` among ``classes`` (sorted, two or more) from
    ``(coef, intercept)`` (zeros when ``None``); returns ``(coef (k, d), intercept (k,), iterations)``
    in ``X``'s dtype (k = 1 for two classes). ``pool``: threads for the row blocks (shared by the fits running at once: a fit
    left alone gets every thread); ``None`` evaluates them in this thread. ``precond``: L-BFGS walks
    in its variables (:class:`Preconditioner`; ``tol`` bounds the gradient there)."""
    from scipy.optimize import minimize

    classes = np.asarray(classes)
    k, (n, d) = len(classes), X.shape
    yi = np.searchsorted(classes, y)
    if k == 2:  # one logit: the coefficients of the second class, as LogisticRegression's binary fit
        k, cls, yi = 1, 2, yi.astype(X.dtype)
    else:
        cls = k
    w0 = np.zeros(k * (d + 1))
    if coef is not None:
        w0[: k * d] = np.asarray(coef, np.float64).ravel()
        w0[k * d :] = np.asarray(intercept, np.float64)
    f, to_w = objective(X, yi, C, cls, pool=pool), None
    if precond is not None:
        f, to_v, to_w = precond.wrap(f, C, n, k, d)
        w0 = to_v(w0)
    res = minimize(f, w0, method="L-BFGS-B", jac=True,
                   options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * np.finfo(float).eps})
    w = res.x if to_w is None else to_w(res.x)
    return (w[: k * d].reshape(k, d).astype(X.dtype), w[k * d :].astype(X.dtype), int(min(res.nit, max_iter)))


class WarmPath:
    """One fold's fits along ascending C values, each started from the previous solution (what
    ``LogisticRegression(warm_start=True)`` does), with ``coef_``, ``intercept_``, ``classes_``
    and ``predict`` as a fitted ``LogisticRegression`` has them."""

    def __init__(self, X, y, *, tol: float, max_iter: int, start=None, pool: BlockPool | None = None,
                 precond: Preconditioner | None = None):
        self.X, self.y, self.tol, self.max_iter, self.pool, self.precond = X, y, tol, max_iter, pool, precond
        self.classes_ = np.unique(y)
        self.coef_, self.intercept_ = (None, None) if start is None else start

    def fit(self, C: float) -> int:
        """Fit at ``C`` from the last solution; the iterations it took."""
        self.coef_, self.intercept_, n_iter = fit(self.X, self.y, self.classes_, C, tol=self.tol, max_iter=self.max_iter,
                                                  coef=self.coef_, intercept=self.intercept_, pool=self.pool,
                                                  precond=self.precond)
        return n_iter

    def predict(self, X):
        z = X @ self.coef_.T + self.intercept_
        if z.shape[1] == 1:  # two classes, one logit
            return self.classes_[(z[:, 0] > 0).astype(int)]
        return self.classes_[np.argmax(z, axis=1)]


class BlockPool(ThreadPoolExecutor):
    """Threads for the row blocks of the fits running at once. A fit evaluates its blocks here only
    while fewer fits run than there are threads (the last fold of a rung, the refit); otherwise in
    its own thread, with no hand-off per block (measured: slower for the small fits of the first
    rung). Either way it gives the same bits."""

    def __init__(self, threads: int):
        super().__init__(threads, thread_name_prefix="featx-blocks")
        self.threads, self.running = threads, 0
        self._lock = threading.Lock()

    def idle(self) -> bool:
        return self.running < self.threads

    @contextlib.contextmanager
    def fitting(self):
        """Count one fit as running in this block."""
        with self._lock:
            self.running += 1
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1


def block_pool(threads: int):
    """A :class:`BlockPool` of ``threads`` threads, or a no-op context (``None``) for one."""
    return BlockPool(threads) if threads > 1 else contextlib.nullcontext()
