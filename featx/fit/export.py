"""Export and verified load of a fitted classifier.

* :func:`export_classifier`: ``best_estimator_`` as a pickle (or skops) file, a JSON manifest
  beside it (sha256 of the file, label names, backbone settings, feature dimension, versions,
  scores, config) and the metrics JSON that ``featx report`` reads. The three files are one
  crash-safe unit: each is written whole to ``NAME.partial``, then the classifier and the metrics
  are renamed into place and the manifest last (the commit). A kill before the manifest's rename
  leaves the old unit intact, or a classifier whose manifest is still ``clf.manifest.json.partial``
  (its sha256 vouches for the classifier): featx's own unfinished export, which a rerun replaces
  (no ``--overwrite`` needed) and which :func:`load_classifier` refuses in one line.
* :func:`load_classifier`: the checks of :mod:`featx.fit.manifest`: the file's sha256 against the
  manifest before deserializing, pickle vs skops decided from the file's own bytes, and the
  manifest's label names and backbone settings against the copy inside the classifier. They catch
  a file or manifest edited after export; they cannot vouch for a pickle an attacker rewrote
  together with its manifest: only load pickles from sources you trust, or use ``--format skops``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import platform
from pathlib import Path

import numpy as np

from featx import __version__
from featx.errors import FeatxError, OutputExistsError
from featx.fit.manifest import FORMATS, load_verified, side_paths, stamp
from featx.fit.result import FitResult
from featx.utils import atomic_write_bytes, atomic_write_json

MANIFEST_SCHEMA = "featx.classifier/1"
PARTIAL = ".partial"


def _partial(p: Path) -> Path:
    return p.with_name(p.name + PARTIAL)


def unfinished_export(path: str | os.PathLike) -> bool:
    """True when ``path`` is a classifier whose export was killed before its manifest was renamed
    into place: the manifest's partial beside it names it with a matching sha256."""
    from featx.outputs import is_featx_output

    p = Path(path)
    manifest, _ = side_paths(p)
    return p.is_file() and _partial(manifest).is_file() and is_featx_output(p) and not _committed(p)


def _committed(p: Path) -> bool:
    """The classifier at ``p`` is the one its (final) manifest vouches for."""
    import json

    try:
        manifest = json.loads(side_paths(p)[0].read_text())
        return isinstance(manifest, dict) and manifest.get("sha256") == hashlib.sha256(p.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return False


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
    file), ``data`` describes the features (``train``/``test`` paths, ``fit_key``: what a rerun
    compares). The files are written as one crash-safe unit (see the module docstring).
    """
    from featx.results.metrics import make_metrics, write_metrics

    if format not in FORMATS:
        raise FeatxError(f"--format must be one of {', '.join(FORMATS)}. Received: {format!r}")
    out = Path(out_path)
    manifest_path, metrics_path = side_paths(out)
    if out.exists() and not overwrite and not unfinished_export(out):
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
        "fit_key": data.get("fit_key"),
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
    metrics["extract"] = result.extract  # end-to-end costs for featx report (featx.results.costs)
    # one unit: every file whole under a partial name, then renamed, the manifest (the commit) last
    atomic_write_bytes(_partial(out), blob)
    write_metrics(_partial(metrics_path), metrics)
    atomic_write_json(_partial(manifest_path), manifest)
    for p in (out, metrics_path, manifest_path):
        os.replace(_partial(p), p)
    return {"classifier": out, "manifest": manifest_path, "metrics": metrics_path}


def _short(name: str | None) -> str | None:
    """``keras:/runs/mini/model.keras:flatten`` -> ``mini/model.keras:flatten`` for display."""
    if not name or not name.startswith("keras:"):
        return name
    parts = name[len("keras:"):].rsplit("/", 2)
    return "keras:" + "/".join(parts[-2:])


def load_classifier(path: str | os.PathLike) -> tuple[object, dict]:
    """``(estimator, manifest)`` of an exported classifier, after the checks of :func:`featx.fit.manifest.load_verified`.

    Raises :class:`~featx.errors.FeatxError` when the manifest is missing, the file's sha256 differs
    from the manifest's, the bytes are not the format the file claims, or the manifest was edited.
    """
    return load_verified(path)
