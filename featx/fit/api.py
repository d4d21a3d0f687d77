"""``featx fit``: a tuned logistic regression on features, exported with a verifiable manifest.

Importing this package never imports TensorFlow, and neither does the in-memory fit (scikit-learn +
NumPy + h5py); the out-of-core fit (``--solver sgd``) trains with Keras on its configured backend. :func:`fit_features` reads top-down, each step a module of its own:

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
from featx.fit.export import export_classifier, unfinished_export
from featx.fit.features import check_same_extraction, extract_costs, file_identity, load_features
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
    solver_choice: str | None = None,
    **fit_kwargs,
) -> tuple[FitResult, dict[str, Path]]:
    """``featx fit``: load features (and test features), fit, export. Returns the result and paths.

    Like build and extract, a rerun with the same features and parameters is a no-op: the
    classifier is kept and returned (``result.reused``); other parameters need ``overwrite``.
    ``solver="auto"`` (the default) decides here and records why in the manifest
    (``config.solver_choice``); a caller that decided ``auto`` itself passes its reason as
    ``solver_choice`` (``featx fit`` does).
    """
    from featx.outputs import check_not_input, check_overwritable, check_writable, output_lock

    out = Path(out_path)
    if format not in FORMATS:
        raise FeatxError(f"--format must be one of {', '.join(FORMATS)}. Received: {format!r}")
    # all before minutes of fitting: inputs never replaced, only featx's files, a folder we can write
    for p in (out, *side_paths(out)):
        check_not_input(p, features, test)
        check_overwritable(p)
    check_writable(out)
    why = solver_choice
    if fit_kwargs.get("solver", "auto") == "auto":  # decided before the key: a rerun compares like with like
        from featx.fit.sgd import choose_solver

        fit_kwargs["solver"], why = choose_solver(features, test)
    with output_lock(out):
        key = fit_key(features, test, format=format, **fit_kwargs)
        if out.exists() and not overwrite and not unfinished_export(out):
            kept = _kept(out, key)
            if kept is not None:
                return kept
            raise OutputExistsError(f"{out} exists and was fit with other features or parameters; "
                                    "pass --overwrite to replace it")
        return _fit_features(features, out, test=test, format=format, overwrite=overwrite, key=key, why=why, **fit_kwargs)


#: parameters that change where or how fast a fit runs, never what it finds
_NOT_CONTENT = ("jobs", "backend", "address", "connect_timeout", "progress")


def fit_key(features, test, **params) -> str:
    """What a fit depends on: the features (and test) files as written, and the parameters."""
    import hashlib
    import json

    content = {k: v for k, v in sorted(params.items()) if k not in _NOT_CONTENT}
    ident = {"features": file_identity(features), "test": None if test is None else file_identity(test)}
    return hashlib.sha256(json.dumps([ident, content], sort_keys=True, default=str).encode()).hexdigest()


def _kept(out: Path, key: str) -> tuple[FitResult, dict[str, Path]] | None:
    """The finished fit at ``out`` when it was made with ``key`` (a rerun), else None."""
    from featx.fit.export import load_classifier

    manifest_path, metrics_path = side_paths(out)
    try:
        estimator, manifest = load_classifier(out)
    except FeatxError:
        return None
    if manifest.get("fit_key") != key or not metrics_path.is_file():
        return None
    sc = manifest.get("scores") or {}
    result = FitResult(
        estimator=estimator, label_names=list(manifest["label_names"]), best_params=sc.get("best_params") or {},
        cv_score=sc.get("cv_score"), cv_results=manifest.get("cv_results") or [],
        scores={"rank1": sc.get("rank1"), "rank5": sc.get("rank5")}, fit_seconds=sc.get("fit_seconds") or 0.0,
        predict_seconds=0.0, n_train=sc.get("n_train"), n_test=sc.get("n_test"),
        feature_dim=manifest.get("feature_dim"), warnings=list(manifest.get("warnings") or []),
        config=manifest.get("config") or {}, extract=manifest.get("extract"), reused=True,
    )
    return result, {"classifier": out, "manifest": manifest_path, "metrics": metrics_path}


def _fit_features(features, out: Path, *, test, format, overwrite, key: str | None = None, solver: str = "lbfgs", why=None,
                  slab_rows: int | None = None, epochs: int | None = None, **fit_kwargs) -> tuple[FitResult, dict[str, Path]]:
    if solver == "sgd":
        return _fit_features_sgd(features, out, test=test, format=format, overwrite=overwrite, key=key,
                                 slab_rows=slab_rows, epochs=epochs, why=why, **fit_kwargs)
    if solver != "lbfgs":
        raise FeatxError(f"solver must be auto, lbfgs or sgd. Received: solver={solver!r}")
    for k in ("learning_rate", "batch_size", "progress"):  # the streamed solver's own
        fit_kwargs.pop(k, None)
    X, y, names, backbone = load_features(features)
    X_test = y_test = None
    if test is not None:
        X_test, y_test, test_names, test_backbone = load_features(test)
        check_same_extraction(features, test, names, test_names, X.shape[1:], X_test.shape[1:], backbone, test_backbone)
    # X was read for this fit alone: the search may scale and split it in place (no copy)
    result = fit_classifier(X, y, label_names=names, X_test=X_test, y_test=y_test, copy=False, **fit_kwargs)
    if why is not None:
        result.config["solver_choice"] = why
    return _export(result, features, test, out, format=format, backbone=backbone, overwrite=overwrite, key=key)


def _fit_features_sgd(features, out: Path, *, test, format, overwrite, slab_rows, epochs, key=None, why=None, **fit_kwargs):
    """``--solver sgd``: the features file is streamed in slabs (:mod:`featx.fit.sgd`), never loaded."""
    from featx.fit.sgd import DEFAULT_EPOCHS, DEFAULT_SLAB_ROWS, fit_sgd
    from featx.store import feature_settings, open_store

    with open_store(features, kind="features") as r:
        names, backbone, dim = list(r.label_names), feature_settings(r.attrs) or None, r.row_shape
    if test is not None:
        with open_store(test, kind="features") as r:
            test_names, test_backbone, test_dim = list(r.label_names), feature_settings(r.attrs) or None, r.row_shape
        check_same_extraction(features, test, names, test_names, dim, test_dim, backbone, test_backbone)
    keep = {k: fit_kwargs[k] for k in ("test_size", "seed", "grid", "scalers", "learning_rate", "batch_size", "progress")
            if fit_kwargs.get(k) is not None}
    result = fit_sgd(features, test=test, slab_rows=slab_rows or DEFAULT_SLAB_ROWS, epochs=epochs or DEFAULT_EPOCHS, **keep)
    if why is not None:
        result.config["solver_choice"] = why
    return _export(result, features, test, out, format=format, backbone=backbone, overwrite=overwrite, key=key)


def _export(result, features, test, out: Path, *, format, backbone, overwrite, key=None) -> tuple[FitResult, dict[str, Path]]:
    """Attach the extraction costs and write the classifier, its manifest and metrics."""
    result.extract = extract_costs(features, test)
    data = {"train": str(Path(features).resolve()), "fit_key": key}
    if test is not None:
        data["test"] = str(Path(test).resolve())
    paths = export_classifier(result, out, format=format, backbone=backbone, data=data, overwrite=overwrite)
    return result, paths
