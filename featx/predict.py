"""``featx predict``: image files -> the backbone a classifier was fit on -> labels and probabilities.

The classifier's manifest names the backbone settings (name, weights, image size, preprocessing,
resize); the same extractor is rebuilt and run through the same ``tf.data`` pipeline as
``featx extract``. A file that cannot be decoded gets an error on its own row; the others go on.

An export folder (``featx export``) works too: the images are decoded by the same pipeline at the
export's input size and resize rule and fed to its model (``model.keras``, else the SavedModel,
ONNX or TFLite file, its sha256 checked against ``export.json``); nothing is unpickled.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featx.errors import FeatxError


@dataclass
class Prediction:
    path: str
    label: str | None = None
    probability: float | None = None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None


def predict_images(
    classifier: str | os.PathLike,
    inputs: list[str | os.PathLike],
    *,
    top_k: int = 5,
    batch_size: int = 32,
    mixed_precision: bool | None = None,
    xla: bool | None = None,
    max_pixels: int | None = None,
) -> tuple[list[Prediction], dict]:
    """Classify every image in ``inputs`` (files and folders, recursively). Returns rows and the manifest.

    ``classifier`` is a ``featx fit`` classifier file or a ``featx export`` folder (then the
    returned record holds ``label_names``, ``format`` and ``export``, the folder's export.json).
    Images declaring more than ``max_pixels`` pixels get an error row, never decoded.
    """
    from featx.backbones.backbone import backbone_from_settings
    from featx.data.discover import list_image_files
    from featx.export import is_export_dir
    from featx.extract import FeatureMapper, image_dataset
    from featx.fit import full_proba, load_classifier
    from featx.runtime.accel import resolve_accel

    if is_export_dir(classifier):
        return _predict_exported(classifier, inputs, top_k=top_k, batch_size=batch_size, max_pixels=max_pixels)
    if Path(classifier).is_dir():
        raise FeatxError(
            f"{classifier} is a folder without export.json: pass a classifier file from featx fit "
            "or a folder written by featx export"
        )
    estimator, manifest = load_classifier(classifier)
    settings = manifest.get("backbone")
    if not settings:
        raise FeatxError(
            f"{classifier} was fit on features without a recorded backbone: predict needs features from featx extract"
        )
    paths, missing = list_image_files(list(inputs))
    rows = [Prediction(path=p) for p in paths]
    if not paths:
        if missing:
            return [Prediction(path=m["path"], error=m["reason"]) for m in missing], manifest
        raise FeatxError(f"no image files in {', '.join(map(str, inputs))}")
    accel = resolve_accel(mixed_precision, xla)
    backbone = backbone_from_settings(settings, mixed_precision=accel.mixed_precision)
    if backbone.dim != int(manifest.get("feature_dim", backbone.dim)):
        raise FeatxError(f"backbone gives {backbone.dim}-d features, the classifier expects {manifest['feature_dim']}")
    names = list(manifest["label_names"])
    k = max(1, min(top_k, len(names)))
    ds = image_dataset(
        paths, size=backbone.image_size, batch_size=batch_size, resize=settings.get("resize", "aspect")
        if settings.get("resize") in ("aspect", "plain") else "aspect", max_pixels=max_pixels,
    )
    mapper = FeatureMapper(settings, mixed_precision=accel.mixed_precision, xla=accel.xla, batch_size=batch_size,
                           backbone=backbone)
    for idx, feats, reasons in mapper.iter_features(ds, overlap=accel.overlap):
        ok = np.array([not r for r in reasons], dtype=bool)
        finite = np.isfinite(feats).all(axis=1)
        reasons = [r or ("" if f else "the backbone gave NaN or infinite features") for r, f in zip(reasons, finite)]
        ok &= finite
        proba = full_proba(estimator, feats[ok], len(names)) if ok.any() else np.zeros((0, len(names)))
        _fill(rows, idx, ok, reasons, proba, names, k)
    rows.extend(Prediction(path=m["path"], error=m["reason"]) for m in missing)
    return rows, manifest


def _fill(rows, idx, ok, reasons, proba, names, k) -> None:
    """Top-k labels of the good rows of one batch (``proba`` holds one row per good image)."""
    j = 0
    for i, good, reason in zip(idx, ok, reasons):
        row = rows[int(i)]
        if not good:
            row.error = reason
            continue
        p = proba[j]
        j += 1
        order = np.argsort(-p, kind="stable")[:k]
        row.top_k = [(names[c], float(p[c])) for c in order]
        row.label, row.probability = row.top_k[0]


def _predict_exported(folder, inputs, *, top_k: int, batch_size: int, max_pixels: int | None):
    """``predict_images`` for an export folder; the returned record says which model ran."""
    from featx.data.discover import list_image_files
    from featx.export import load_exported
    from featx.extract import image_dataset

    model = load_exported(folder, batch_size=batch_size)
    names = model.label_names
    info = {"label_names": names, "backbone": {"name": f"exported {model.format} model"}, "export": model.record,
            "format": model.format}
    paths, missing = list_image_files(list(inputs))
    if not paths:
        if missing:
            return [Prediction(path=m["path"], error=m["reason"]) for m in missing], info
        raise FeatxError(f"no image files in {', '.join(map(str, inputs))}")
    rows = [Prediction(path=p) for p in paths]
    k = max(1, min(top_k, len(names)))
    ds = image_dataset(paths, size=model.image_size, batch_size=batch_size, resize=model.resize, max_pixels=max_pixels)
    for idx, images, reasons in ds.as_numpy_iterator():
        reasons = [r.decode() if isinstance(r, bytes) else str(r) for r in reasons]
        ok = np.array([not r for r in reasons], dtype=bool)
        proba = model(images[ok]) if ok.any() else np.zeros((0, len(names)))
        if proba.shape[1:] != (len(names),):
            raise FeatxError(f"{folder}: the model gives {proba.shape[1:]} outputs for {len(names)} labels")
        finite = np.isfinite(proba).all(axis=1)
        if not finite.all():  # rows of NaN: an error on their own line
            bad = np.flatnonzero(ok)[~finite]
            for b in bad:
                reasons[b] = "the model gave NaN or infinite probabilities"
            ok[bad] = False
            proba = proba[finite]
        _fill(rows, idx, ok, reasons, proba, names, k)
    rows.extend(Prediction(path=m["path"], error=m["reason"]) for m in missing)
    return rows, info


def write_csv(path: str | os.PathLike, rows: list[Prediction], top_k: int) -> Path:
    """CSV (UTF-8): ``path,label,probability,top1,p1,...,topK,pK,error``.

    A file name that is not valid UTF-8 is written in the escaped form of
    :func:`featx.utils.escape_name` (``bad\\xff.jpg``; backslashes doubled): ``unescape_name`` gives it back.
    """
    from featx.utils import atomic_write_text, escape_name

    header = ["path", "label", "probability"]
    for i in range(1, top_k + 1):
        header += [f"top{i}", f"p{i}"]
    header.append("error")
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        cells = [escape_name(r.path), r.label or "", "" if r.probability is None else f"{r.probability:.6f}"]
        for i in range(top_k):
            name, p = r.top_k[i] if i < len(r.top_k) else ("", None)
            cells += [name, "" if p is None else f"{p:.6f}"]
        cells.append(r.error or "")
        w.writerow(cells)
    return atomic_write_text(path, buf.getvalue())
