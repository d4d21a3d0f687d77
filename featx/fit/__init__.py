"""``featx fit``: a logistic regression tuned on features, exported with a verifiable manifest.

One module a step, in the order :func:`fit_features` calls them:

* :mod:`~featx.fit.features`: load a features file, check a held-out file against it, its costs;
* :mod:`~featx.fit.lbfgs`: the in-memory solver (:func:`fit_classifier`), over the C search of
  :mod:`~featx.fit.tuning` (successive halving, scaler choice), :mod:`~featx.fit.search`
  (warm-started C paths per fold) and :mod:`~featx.fit.scaling`; folds run through a joblib
  backend of :mod:`~featx.fit.backends` (threading, loky, Ray);
* :mod:`~featx.fit.sgd`: the out-of-core solver (``--solver sgd``, or ``auto`` when the features
  would not fit in memory), streamed slab by slab into the softmax heads of :mod:`~featx.fit.softmax`
  (Keras: this solver alone imports the Keras backend);
* :mod:`~featx.fit.result`: :class:`FitResult` and :func:`full_proba`;
* :mod:`~featx.fit.head`: :func:`dense_head`, the classifier (scaler folded in) as a Dense softmax
  layer's kernel and bias (``featx finetune --head``, ``featx export``);
* the search alone, for stages that need the fit's model without a held-out split (``featx inspect``):
  :func:`search_classifier` (:func:`featx.fit.tuning.search`) and :func:`make_pipeline`;
* :mod:`~featx.fit.export` and :mod:`~featx.fit.manifest`: the classifier file, its manifest,
  and the verified load (:func:`load_classifier`) that predict and evaluate use.

Importing this package imports neither scikit-learn nor TensorFlow.
"""

from featx.fit.api import fit_features
from featx.fit.backends import RAY_INSTALL, import_ray, joblib_backend
from featx.fit.export import export_classifier, load_classifier, versions
from featx.fit.features import check_same_extraction, load_features
from featx.fit.head import dense_head, head_activation
from featx.fit.lbfgs import fit_classifier
from featx.fit.manifest import (
    DEFAULT_FORMAT,
    FORMATS,
    check_feature_settings,
    read_manifest,
    settings_mismatch,
    side_paths,
)
from featx.fit.result import FitResult, full_proba
from featx.fit.search import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_CV,
    DEFAULT_GRID,
    DEFAULT_MAX_ITER,
    DEFAULT_SCALER,
    DEFAULT_SOLVER,
    DEFAULT_TEST_SIZE,
    DEFAULT_TOL,
    SCALER_CHOICES,
    SCALERS,
    SOLVERS,
)
from featx.fit.sgd import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPOCHS,
    DEFAULT_LEARNING_RATE,
    DEFAULT_SLAB_ROWS,
    choose_solver,
    fit_sgd,
    size_text,
)
from featx.fit.tuning import SearchResult, make_pipeline
from featx.fit.tuning import search as search_classifier

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CV",
    "DEFAULT_EPOCHS",
    "DEFAULT_FORMAT",
    "DEFAULT_GRID",
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_MAX_ITER",
    "DEFAULT_SCALER",
    "DEFAULT_SLAB_ROWS",
    "DEFAULT_SOLVER",
    "DEFAULT_TEST_SIZE",
    "DEFAULT_TOL",
    "FORMATS",
    "RAY_INSTALL",
    "SCALERS",
    "SCALER_CHOICES",
    "SOLVERS",
    "FitResult",
    "SearchResult",
    "check_feature_settings",
    "check_same_extraction",
    "choose_solver",
    "dense_head",
    "export_classifier",
    "fit_classifier",
    "fit_features",
    "fit_sgd",
    "full_proba",
    "head_activation",
    "import_ray",
    "joblib_backend",
    "load_classifier",
    "load_features",
    "make_pipeline",
    "read_manifest",
    "search_classifier",
    "settings_mismatch",
    "side_paths",
    "size_text",
    "versions",
]
