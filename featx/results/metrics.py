"""Scores and the metrics JSON that ``featx fit`` and ``featx evaluate`` write and ``featx report`` reads.

Every row counts: rank-k comes from :func:`sklearn.metrics.top_k_accuracy_score` over all ``N``
predictions (never ``N // batch`` batches). Rank-5 is ``None`` when there are 5 classes or fewer,
where it would be trivially 1.0; the report shows such a cell as "n/a".

Schema (``schema: "featx.metrics/1"``)::

    {
      "schema": "featx.metrics/1", "featx_version": "...", "created": "...",
      "method": "ResNet50 features + LR",       # row label in the report
      "kind": "transfer" | "finetune" | "scratch",   # linear probe / fine-tuned / from scratch
      "model": {"name": ..., "backbone": ..., "params": int | null, "size_bytes": int | null,
                "path": ..., "trainable_params": int | null},
      "data": {"path": ..., "rows": N, "label_names": [...]},
      "single_crop": {"rank1": float, "rank5": float | null, "seconds": float,
                      "images_per_second": float},
      "ten_crop": {...same keys...} | null,      # null: not measured or does not apply
      "train_seconds": float | null,             # fit time or training time
      "classification_report": {...},            # sklearn output_dict=True
      "confusion_matrix": [[...]],
      "history": "path/to/history.json" | null,
      "warnings": ["..."],                        # e.g. features not pretrained
      "config": {...}
    }
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence

import numpy as np

from featx import __version__
from featx.utils import atomic_write_json, read_record

SCHEMA = "featx.metrics/1"
#: the three transfer paths: features + a linear probe, a fine-tuned backbone, a network from scratch
KINDS = ("transfer", "finetune", "scratch")


def rank_k(y_true: Sequence[int], proba: np.ndarray, k: int, n_classes: int | None = None) -> float | None:
    """Top-k accuracy over every row; ``None`` when ``k`` >= the number of classes."""
    proba = np.asarray(proba)
    n_classes = n_classes or proba.shape[1]
    if k >= n_classes:
        return None if k > 1 else 1.0
    from sklearn.metrics import top_k_accuracy_score

    if n_classes == 2:  # sklearn wants the positive-class score for binary targets, not (N, 2)
        proba = proba[:, 1]
    return float(top_k_accuracy_score(np.asarray(y_true), proba, k=k, labels=np.arange(n_classes)))


def score(y_true: Sequence[int], proba: np.ndarray, label_names: Sequence[str]) -> dict:
    """rank-1, rank-5, per-class report and confusion matrix for probabilities ``(N, C)``."""
    from sklearn.metrics import classification_report, confusion_matrix

    proba = np.asarray(proba)
    y_true = np.asarray(y_true)
    n_classes = len(label_names)
    if proba.ndim != 2 or proba.shape[0] != len(y_true) or proba.shape[1] != n_classes:
        raise ValueError(
            f"expected probabilities of shape ({len(y_true)}, {n_classes}). Received: {proba.shape}"
        )
    y_pred = proba.argmax(axis=1)
    labels = np.arange(n_classes)
    return {
        "rank1": rank_k(y_true, proba, 1, n_classes),
        "rank5": rank_k(y_true, proba, 5, n_classes),
        "classification_report": classification_report(
            y_true, y_pred, labels=labels, target_names=list(label_names), output_dict=True, zero_division=0
        ),
        "classification_report_text": classification_report(
            y_true, y_pred, labels=labels, target_names=list(label_names), digits=4, zero_division=0
        ),
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def make_metrics(
    *,
    method: str,
    kind: str,
    model: dict,
    data: dict,
    single_crop: dict,
    ten_crop: dict | None = None,
    train_seconds: float | None = None,
    classification_report: dict | None = None,
    confusion_matrix: list | None = None,
    history: str | None = None,
    warnings: list[str] | None = None,
    config: dict | None = None,
) -> dict:
    """Assemble one metrics record in the schema above."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}. Received: {kind!r}")
    return {
        "schema": SCHEMA,
        "featx_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "method": method,
        "kind": kind,
        "model": model,
        "data": data,
        "single_crop": single_crop,
        "ten_crop": ten_crop,
        "train_seconds": train_seconds,
        "classification_report": classification_report,
        "confusion_matrix": confusion_matrix,
        "history": history,
        "warnings": list(warnings or []),
        "config": config or {},
    }


def write_metrics(path: str | os.PathLike, record: dict) -> str:
    atomic_write_json(path, record)
    return str(path)


def read_metrics(path: str | os.PathLike) -> dict:
    """Read a metrics JSON, checking its schema."""
    return read_record(path, SCHEMA, "metrics file")
