"""What a fit returns (:class:`FitResult`) and probabilities over every class (:func:`full_proba`).

Shared by both solvers (:mod:`featx.fit.lbfgs`, :mod:`featx.fit.sgd`) and by the stages that
score a classifier (evaluate, predict); NumPy only.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class FitResult:
    """A fitted, scored classifier (fitted attributes of the search end in ``_`` as in sklearn)."""

    estimator: object
    label_names: list[str]
    best_params: dict
    cv_score: float
    cv_results: list[dict]
    scores: dict
    fit_seconds: float
    predict_seconds: float
    n_train: int
    n_test: int
    feature_dim: int
    warnings: list[str]
    config: dict
    #: extraction costs of the features (:func:`featx.results.costs.fit_costs`), set by :func:`fit_features`
    extract: dict | None = None
    #: True when a rerun found this fit finished with the same features and parameters (nothing refit)
    reused: bool = False

    @property
    def n_params(self) -> int:
        lr = self.estimator[-1]
        return int(lr.coef_.size + lr.intercept_.size)


def full_proba(estimator, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` as ``(N, n_classes)`` columns, also when training lacked some classes."""
    proba = estimator.predict_proba(X)
    classes = np.asarray(estimator.classes_, dtype=np.int64)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    out = np.zeros((len(X), n_classes), dtype=proba.dtype)
    out[:, classes] = proba
    return out
