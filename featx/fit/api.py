"""``featx fit``: a tuned logistic regression on features, exported with a verifiable manifest.

Pure scikit-learn + NumPy + h5py: importing this package (and running ``featx fit``) never imports
TensorFlow. :func:`fit_features` reads top-down, each step a module of its own:

1. load the features (:mod:`featx.fit.features`) and check a held-out file against them;
2. search C and the scaler and score the refit winner: in memory (:mod:`featx.fit.lbfgs`, over
   :mod:`featx.fit.tuning` / :mod:`featx.fit.search` / :mod:`featx.fit.scaling`, folds run
   through a joblib backend of :mod:`featx.fit.backends`) or streamed in slabs
   (``--solver sgd``, :mod:`featx.fit.sgd`);
3. attach the end-to-end costs (:mod:`featx.results.costs`) and export the classifier with its
   manifest and metrics (:mod:`featx.fit.export`).
"""

from __future__ import annotations

import os
from pathlib import Path

from featx.errors import FeatxError, OutputExistsError
from featx.fit.export import export_classifier
from featx.fit.features import check_same_extraction, extract_costs, load_features
from featx.fit.lbfgs import fit_classifier
from featx.fit.manifest import FORMATS, side_paths
from featx.fit.result import FitResult


def fit_features(
    features: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    test: str | os.PathLike | None = None,
    format: str = "pickle",
    overwrite: bool = False,
    **fit_kwargs,
) -> tuple[FitResult, dict[str, Path]]:
    """``featx fit``: load features (and test features), fit, export. Returns the result and paths."""
    from featx.outputs import check_not_input, check_overwritable, check_writable, output_lock

    out = Path(out_path)
    if format not in FORMATS:
        raise FeatxError(f"--format must be one of {', '.join(FORMATS)}. Received: {format!r}")
    # all before minutes of fitting: inputs never replaced, only featx's files, a folder we can write
    for p in (out, *side_paths(out)):
        check_not_input(p, features, test)
        check_overwritable(p)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    check_writable(out)
    with output_lock(out):
        return _fit_features(features, out, test=test, format=format, overwrite=overwrite, **fit_kwargs)


def _fit_features(features, out: Path, *, test, format, overwrite, solver: str = "lbfgs",
                  slab_rows: int | None = None, epochs: int | None = None, **fit_kwargs) -> tuple[FitResult, dict[str, Path]]:
    if solver == "sgd":
        return _fit_features_sgd(features, out, test=test, format=format, overwrite=overwrite,
                                 slab_rows=slab_rows, epochs=epochs, **fit_kwargs)
    if solver != "lbfgs":
        raise FeatxError(f"solver must be lbfgs or sgd. Received: solver={solver!r}")
    X, y, names, backbone = load_features(features)
    X_test = y_test = None
    if test is not None:
        X_test, y_test, test_names, test_backbone = load_features(test)
        check_same_extraction(features, test, names, test_names, X.shape[1:], X_test.shape[1:], backbone, test_backbone)
    # X was read for this fit alone: the search may scale and split it in place (no copy)
    result = fit_classifier(X, y, label_names=names, X_test=X_test, y_test=y_test, copy=False, **fit_kwargs)
    return _export(result, features, test, out, format=format, backbone=backbone, overwrite=overwrite)


def _fit_features_sgd(features, out: Path, *, test, format, overwrite, slab_rows, epochs, **fit_kwargs):
    """``--solver sgd``: the features file is streamed in slabs (:mod:`featx.fit.sgd`), never loaded."""
    from featx.fit.sgd import DEFAULT_EPOCHS, DEFAULT_SLAB_ROWS, fit_sgd
    from featx.store import feature_settings, open_store

    with open_store(features, kind="features") as r:
        names, backbone, dim = list(r.label_names), feature_settings(r.attrs) or None, r.row_shape
    if test is not None:
        with open_store(test, kind="features") as r:
            test_names, test_backbone, test_dim = list(r.label_names), feature_settings(r.attrs) or None, r.row_shape
        check_same_extraction(features, test, names, test_names, dim, test_dim, backbone, test_backbone)
    keep = {k: fit_kwargs[k] for k in ("test_size", "seed", "grid", "scalers") if k in fit_kwargs}
    result = fit_sgd(features, test=test, slab_rows=slab_rows or DEFAULT_SLAB_ROWS, epochs=epochs or DEFAULT_EPOCHS, **keep)
    return _export(result, features, test, out, format=format, backbone=backbone, overwrite=overwrite)


def _export(result, features, test, out: Path, *, format, backbone, overwrite) -> tuple[FitResult, dict[str, Path]]:
    """Attach the extraction costs and write the classifier, its manifest and metrics."""
    result.extract = extract_costs(features, test)
    data = {"train": str(Path(features).resolve())}
    if test is not None:
        data["test"] = str(Path(test).resolve())
    paths = export_classifier(result, out, format=format, backbone=backbone, data=data, overwrite=overwrite)
    return result, paths
