"""``featx fit``: a tuned logistic regression on features, exported with a verifiable manifest.

Pure scikit-learn + NumPy + h5py: importing this module (and running ``featx fit``) never imports
TensorFlow.

* :func:`fit_classifier`: ``Pipeline(scaler, LogisticRegression(lbfgs))`` with ``C`` and the
  scaler chosen by cross-validation, each fold walking the C grid with warm starts (successive
  halving over rows on large sets; :mod:`featx.tuning`, :mod:`featx.search`,
  :mod:`featx.scaling`), folds run in parallel through a joblib backend (:mod:`featx.distributed`);
  ``--solver sgd`` streams the file instead (:mod:`featx.sgd`). Scored on a held-out set: rank-1,
  rank-5 (``top_k_accuracy_score``, every row counted) and a classification report.
* :func:`export_classifier`: ``best_estimator_`` as a pickle (or skops) file, a JSON manifest
  beside it (sha256 of the file, label names, backbone settings, feature dimension, versions,
  scores, config) and the metrics JSON that ``featx report`` reads.
* :func:`load_classifier`: the checks of :mod:`featx.manifest`: the file's sha256 against the
  manifest before deserializing, pickle vs skops decided from the file's own bytes, and the
  manifest's label names and backbone settings against the copy inside the classifier. They catch
  a file or manifest edited after export; they cannot vouch for a pickle an attacker rewrote
  together with its manifest: only load pickles from sources you trust, or use ``--format skops``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import platform
import time
from pathlib import Path

import numpy as np

from featx import __version__
from featx.errors import FeatxError, OutputExistsError
from featx.manifest import (  # noqa: F401 - public names
    DEFAULT_FORMAT,
    FORMATS,
    SKOPS_TRUSTED,
    check_feature_settings,
    load_verified,
    read_manifest,
    side_paths,
    stamp,
)
from featx.search import DEFAULT_TEST_SIZE, SCALERS
from featx.tuning import (  # noqa: F401 - public names
    DEFAULT_BACKEND,
    DEFAULT_CV,
    DEFAULT_GRID,
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    make_pipeline,
)
from featx.utils import atomic_write_bytes, atomic_write_json

MANIFEST_SCHEMA = "featx.classifier/1"


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
    #: extraction costs of the features (:func:`featx.costs.fit_costs`), set by :func:`fit_features`
    extract: dict | None = None

    @property
    def n_params(self) -> int:
        lr = self.estimator[-1]
        return int(lr.coef_.size + lr.intercept_.size)


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


def full_proba(estimator, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` as ``(N, n_classes)`` columns, also when training lacked some classes."""
    proba = estimator.predict_proba(X)
    classes = np.asarray(estimator.classes_, dtype=np.int64)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    out = np.zeros((len(X), n_classes), dtype=proba.dtype)
    out[:, classes] = proba
    return out


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
    copy: bool = True,
    halving: bool | None = None,
) -> FitResult:
    """Tune ``C`` and the scaler by ``cv``-fold cross-validation along a warm-started ``C`` path
    (:func:`featx.tuning.search`); score the refit best model on a held-out set.

    ``scalers`` lists the candidates (``"standard"``, ``"global"``); cross-validation picks one.
    ``grid`` defaults to :data:`featx.search.DEFAULT_GRID` (decades and half decades 1e-4..1e2).
    ``backend`` / ``address``: where the folds run (:mod:`featx.distributed`).
    ``copy=False`` lets the fit reuse ``X``'s memory (it is overwritten): no copy of the features.
    ``halving``: successive halving over rows (default: from 6,000 training rows; :func:`featx.tuning.search`).

    The held-out set is ``(X_test, y_test)`` when given, else a stratified ``test_size`` split
    (fraction or count) of ``(X, y)`` drawn with ``seed``.
    """
    from featx.metrics import score
    from featx.tuning import search

    label_names = [str(n) for n in label_names]
    X, y = _check_xy(X, y, "features")
    n_classes = len(label_names)
    if (y < 0).any() or (y >= n_classes).any():
        raise FeatxError(f"labels must index the {n_classes} label names; got values {y.min()}..{y.max()}")
    if grid is not None and (not len(grid) or any(float(c) <= 0 for c in grid)):
        raise FeatxError(f"grid needs positive C values. Received: grid={grid}")
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
        backend=backend, address=address, copy=not owned, halving=halving,
    )
    best = found.estimator
    t1 = time.perf_counter()
    proba = full_proba(best, X_test, n_classes)
    predict_seconds = time.perf_counter() - t1
    scores = score(y_test, proba, label_names)
    config = {
        "grid": found.grid,
        "search": found.method,
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


def versions() -> dict:
    """Library versions recorded in the manifest (unpickling across versions can break)."""
    import h5py
    import joblib
    import sklearn

    out = {
        "featx": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
        "h5py": h5py.__version__,
    }
    try:
        import skops

        out["skops"] = skops.__version__
    except ImportError:  # pragma: no cover - optional extra
        pass
    return out


def _serialize(estimator, fmt: str) -> bytes:
    if fmt == "pickle":
        return pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        import skops.io as sio
    except ImportError:  # pragma: no cover - optional extra
        raise FeatxError("--format skops needs the skops package: pip install 'featx[skops]'") from None
    return sio.dumps(estimator)


def export_classifier(
    result: FitResult,
    out_path: str | os.PathLike,
    *,
    format: str = "pickle",
    backbone: dict | None = None,
    data: dict | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write the classifier, its manifest and its metrics JSON; returns their paths.

    ``backbone`` is the settings dict of the extractor that made the features (from the feature
    file), ``data`` describes the features (``train``/``test`` paths). The classifier file is
    written first, then the manifest that vouches for it: a crash in between leaves a file that
    :func:`load_classifier` refuses (no manifest), never a manifest for a half-written file.
    """
    from featx.metrics import make_metrics, write_metrics

    if format not in FORMATS:
        raise FeatxError(f"--format must be one of {', '.join(FORMATS)}. Received: {format!r}")
    out = Path(out_path)
    manifest_path, metrics_path = side_paths(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    stamp(result.estimator, label_names=result.label_names, settings=backbone, feature_dim=result.feature_dim)
    blob = _serialize(result.estimator, format)
    digest = hashlib.sha256(blob).hexdigest()
    data = dict(data or {})
    bb_name = (backbone or {}).get("name")
    scores = {
        "rank1": result.scores["rank1"],
        "rank5": result.scores["rank5"],
        "cv_score": result.cv_score,
        "best_params": result.best_params,
        "n_train": result.n_train,
        "n_test": result.n_test,
        "fit_seconds": round(result.fit_seconds, 3),
    }
    config = {**result.config, **{k: v for k, v in data.items() if k in ("train", "test")}, "format": format}
    warns = list(result.warnings)
    if backbone and backbone.get("weights") == "none":
        warns.append("features come from an untrained backbone (weights=none): scores say nothing about the method")
    method = f"{_short(bb_name) or 'features'} features + LR"
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "sha256": digest,
        "format": format,
        "file": out.name,
        "size_bytes": len(blob),
        "estimator": f"{type(result.estimator[0]).__name__} + {type(result.estimator[-1]).__name__}",
        "label_names": result.label_names,
        "backbone": backbone,
        "feature_dim": result.feature_dim,
        "versions": versions(),
        "scores": scores,
        "config": config,
        "cv_results": result.cv_results,
        # read by featx evaluate when it re-scores this classifier
        "name": "logistic regression",
        "method": method,
        "fit_seconds": round(result.fit_seconds, 3),
        "warnings": warns,
        "extract": result.extract,
    }
    metrics = make_metrics(
        method=method,
        kind="transfer",
        model={
            "name": "logistic regression",
            "backbone": bb_name,
            "params": result.n_params,
            "size_bytes": len(blob),
            "path": str(out),
        },
        data={
            "path": data.get("test") or data.get("train"),
            "rows": result.n_test,
            "label_names": result.label_names,
            "split": result.config.get("test"),
        },
        single_crop={
            "rank1": result.scores["rank1"],
            "rank5": result.scores["rank5"],
            "seconds": round(result.predict_seconds, 4),
            "images_per_second": round(result.n_test / result.predict_seconds, 1) if result.predict_seconds > 0 else None,
        },
        ten_crop=None,
        train_seconds=round(result.fit_seconds, 3),
        classification_report=result.scores["classification_report"],
        confusion_matrix=result.scores["confusion_matrix"],
        warnings=warns,
        config={**config, "backbone": backbone, "best_params": result.best_params},
    )
    atomic_write_bytes(out, blob)
    atomic_write_json(manifest_path, manifest)
    metrics["extract"] = result.extract  # end-to-end costs for featx report (featx.costs)
    write_metrics(metrics_path, metrics)
    return {"classifier": out, "manifest": manifest_path, "metrics": metrics_path}


def _short(name: str | None) -> str | None:
    """``keras:/runs/mini/model.keras:flatten`` -> ``mini/model.keras:flatten`` for display."""
    if not name or not name.startswith("keras:"):
        return name
    parts = name[len("keras:"):].rsplit("/", 2)
    return "keras:" + "/".join(parts[-2:])


def load_classifier(path: str | os.PathLike) -> tuple[object, dict]:
    """``(estimator, manifest)`` of an exported classifier, after the checks of :func:`featx.manifest.load_verified`.

    Raises :class:`~featx.errors.FeatxError` when the manifest is missing, the file's sha256 differs
    from the manifest's, the bytes are not the format the file claims, or the manifest was edited.
    """
    return load_verified(path)


# ---------------------------------------------------------------------------- files -> classifier
def load_features(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str], dict | None]:
    """``(X, y, label_names, backbone settings or None)`` from a features HDF5."""
    from featx.store import feature_settings, open_store

    with open_store(path, kind="features") as r:
        X, y = r.load()
        return X, y, list(r.label_names), feature_settings(r.attrs) or None


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
        _check_same_extraction(features, test, names, test_names, X.shape[1:], X_test.shape[1:], backbone, test_backbone)
    # X was read for this fit alone: the search may scale and split it in place (no copy)
    result = fit_classifier(X, y, label_names=names, X_test=X_test, y_test=y_test, copy=False, **fit_kwargs)
    return _export(result, features, test, out, format=format, backbone=backbone, overwrite=overwrite)


def _fit_features_sgd(features, out: Path, *, test, format, overwrite, slab_rows, epochs, **fit_kwargs):
    """``--solver sgd``: the features file is streamed in slabs (:mod:`featx.sgd`), never loaded."""
    from featx.sgd import DEFAULT_EPOCHS, DEFAULT_SLAB_ROWS, fit_sgd
    from featx.store import feature_settings, open_store

    with open_store(features, kind="features") as r:
        names, backbone, dim = list(r.label_names), feature_settings(r.attrs) or None, r.row_shape
    if test is not None:
        with open_store(test, kind="features") as r:
            test_names, test_backbone, test_dim = list(r.label_names), feature_settings(r.attrs) or None, r.row_shape
        _check_same_extraction(features, test, names, test_names, dim, test_dim, backbone, test_backbone)
    keep = {k: fit_kwargs[k] for k in ("test_size", "seed", "grid", "scalers") if k in fit_kwargs}
    result = fit_sgd(features, test=test, slab_rows=slab_rows or DEFAULT_SLAB_ROWS, epochs=epochs or DEFAULT_EPOCHS, **keep)
    return _export(result, features, test, out, format=format, backbone=backbone, overwrite=overwrite)


def _check_same_extraction(features, test, names, test_names, dim, test_dim, backbone, test_backbone) -> None:
    """The held-out file must come from the same dataset and the same backbone settings."""
    if test_names != names:
        raise FeatxError(f"{test} has label names {test_names}, {features} has {names}: extract both from one dataset")
    if (test_backbone or {}).get("name") != (backbone or {}).get("name") or tuple(test_dim) != tuple(dim):
        raise FeatxError(
            f"{test} was extracted with {(test_backbone or {}).get('name')} ({test_dim[0] if test_dim else '?'}-d), "
            f"{features} with {(backbone or {}).get('name')} ({dim[0] if dim else '?'}-d): use the same backbone"
        )
    check_feature_settings(backbone, test_backbone, what=str(test), against=str(features))


def _export(result, features, test, out: Path, *, format, backbone, overwrite) -> tuple[FitResult, dict[str, Path]]:
    """Attach the extraction costs and write the classifier, its manifest and metrics."""
    result.extract = _extract_costs(features, test)
    data = {"train": str(Path(features).resolve())}
    if test is not None:
        data["test"] = str(Path(test).resolve())
    paths = export_classifier(result, out, format=format, backbone=backbone, data=data, overwrite=overwrite)
    return result, paths


def _extract_costs(features, test) -> dict:
    """What extracting the training (and test) features cost, from their ``extract_timing`` attrs."""
    from featx.costs import fit_costs, read_timing
    from featx.store import open_store

    def timing(path):
        with open_store(path, kind="features") as r:
            return read_timing(r.attrs)

    return fit_costs(timing(features), timing(test) if test is not None else None)
