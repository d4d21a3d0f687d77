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

SCALERS = ("standard", "global")


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


def make_scaler(name: str):
    """``"standard"`` -> ``StandardScaler()``, ``"global"`` -> :class:`GlobalScaler`."""
    if name == "standard":
        return StandardScaler()
    if name == "global":
        return GlobalScaler()
    raise ValueError(f"scaler must be one of {SCALERS}. Received: scaler={name!r}")


def scaler_name(scaler) -> str:
    return "global" if isinstance(scaler, GlobalScaler) else "standard"
