"""Feature scaling for the logistic regression in ``featx fit``.

``StandardScaler`` gives every feature unit variance. That conditions the problem well, but it
also blows up features that barely vary (dead CNN units, image borders) to the size of the
informative ones, and the L2 penalty then treats noise and signal alike. :class:`GlobalScaler`
centres each feature and divides all of them by one number (the root mean feature variance): the
problem is as well scaled on average, and the features keep their relative sizes. ``featx fit``
lets cross-validation choose between the two (see ``scripts/bench_fit.py`` for the measurements).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from featx.fit.search import SCALERS  # noqa: F401 - public name

#: Rows per chunk when scaling in place (bounded temporary memory).
CHUNK_ROWS = 8192


class GlobalScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Centre each feature, then divide every feature by ``sqrt(mean(var_j))``.

    Fitted attributes: ``mean_`` (per feature), ``scale_`` (one float), ``n_features_in_``.
    """

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=True)
        self.mean_ = X.mean(axis=0)
        var = float(X.var(axis=0, dtype=np.float64).mean())
        self.scale_ = float(np.sqrt(var)) if var > 0 else 1.0
        return self

    def transform(self, X):
        check_is_fitted(self, "scale_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return ((X - self.mean_) / self.scale_).astype(X.dtype, copy=False)


def fit_standard(X, chunk_rows: int = 1024) -> StandardScaler:
    """A fitted ``StandardScaler`` of ``X`` (finite values), computed chunk by chunk: no full-size
    temporary of ``X``.

    Two passes in float64 accumulators (the column means, then the mean squared deviations from
    them), as ``StandardScaler`` computes them, and its rule for features indistinguishable from a
    constant (scale 1). Its own ``partial_fit`` (NaN-aware, one pass) took 0.57-0.90 s on 7,500 x
    2,048 float32 rows, these two passes 0.065 s, with variances equal to 1e-14 (relative). A
    non-finite value falls back to ``partial_fit``, which ignores NaN."""
    n, d = X.shape
    total = np.zeros(d)
    for a in range(0, n, chunk_rows):
        total += X[a : a + chunk_rows].sum(axis=0, dtype=np.float64)
    mean = total / max(1, n)
    if n == 0 or not np.isfinite(mean).all():
        sc = StandardScaler()
        for a in range(0, len(X), chunk_rows):
            sc.partial_fit(X[a : a + chunk_rows])
        return sc
    squares = np.zeros(d)
    for a in range(0, n, chunk_rows):
        dev = X[a : a + chunk_rows] - mean
        squares += np.einsum("ij,ij->j", dev, dev)
    var = squares / n
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2  # sklearn's _is_constant_feature
    scale = np.sqrt(var)
    scale[constant] = 1.0
    sc = StandardScaler()
    sc.mean_, sc.var_, sc.scale_ = mean, var, scale
    sc.n_samples_seen_, sc.n_features_in_ = np.int64(n), d
    return sc


def global_from_standard(sc: StandardScaler) -> GlobalScaler:
    """The :class:`GlobalScaler` with the same statistics as a fitted ``StandardScaler``."""
    g = GlobalScaler()
    g.mean_ = sc.mean_.copy()
    var = float(np.mean(sc.var_))
    g.scale_ = float(np.sqrt(var)) if var > 0 else 1.0
    g.n_features_in_ = sc.n_features_in_
    return g


def column_scale(scaler) -> np.ndarray:
    """Per-feature divisor of a fitted scaler (``StandardScaler.scale_`` or the global one repeated)."""
    s = np.asarray(scaler.scale_, dtype=np.float64)
    return np.full(scaler.n_features_in_, float(s)) if s.ndim == 0 else s


def transform_inplace(X: np.ndarray, scaler, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """``X`` replaced by ``scaler.transform(X)`` chunk by chunk, in its own dtype (no copy of ``X``)."""
    mean = np.asarray(scaler.mean_, dtype=X.dtype)
    inv = (1.0 / column_scale(scaler)).astype(X.dtype)
    for a in range(0, len(X), chunk_rows):
        blk = X[a : a + chunk_rows]
        blk -= mean
        blk *= inv
    return X


def rescale_inplace(Z: np.ndarray, src, dst, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """``Z`` = ``src.transform(X)`` becomes ``dst.transform(X)`` in place (both centre on the same mean)."""
    factor = (column_scale(src) / column_scale(dst)).astype(Z.dtype)
    for a in range(0, len(Z), chunk_rows):
        Z[a : a + chunk_rows] *= factor
    return Z


def make_scaler(name: str):
    """``"standard"`` -> ``StandardScaler()``, ``"global"`` -> :class:`GlobalScaler`."""
    if name == "standard":
        return StandardScaler()
    if name == "global":
        return GlobalScaler()
    raise ValueError(f"scaler must be one of {SCALERS}. Received: scaler={name!r}")


def scaler_name(scaler) -> str:
    return "global" if isinstance(scaler, GlobalScaler) else "standard"
