"""The data-health record ``featx inspect`` writes (``inspect.json``) and ``featx report`` reads.

Schema (``schema: "featx.inspect/1"``)::

    {
      "schema": "featx.inspect/1", "featx_version": "...", "created": "...",
      "splits": [{"name": "test", "path": "/abs/test.h5", "rows": N, "train": false,
                  "label_issues": int | null,           # training splits only
                  "within_split_pairs": int, "cross_split_pairs": int,
                  "rows_with_duplicate_in_train": int | null,   # non-training splits
                  "leaked_rows": [row, ...] | null,              # those rows (indices into the file)
                  "accuracy": {"classifier": "/abs/clf.pkl", "rank1": float,
                               "rank1_without_leaked": float | null, "rows_without_leaked": int} | null}],
      "counts": {"label_issues": int, "within-split": int, "cross-split": int, "labels_differ": int},
      "thresholds": {"dup_threshold": float}, "engine": "faiss" | "numpy",
      "label_model": {"C": float, "scaler": str, "source": "classifier" | "quick search" | "featx fit", "cv": int},
      "nearest": {"bins": [...], "counts": {"split": [...]}},   # nearest-neighbour similarity histogram
      "timing": {"seconds": {...}}, "files": {...}, "config": {...}
    }
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SCHEMA = "featx.inspect/1"
#: The record's file name in an inspect folder.
INSPECT_JSON = "inspect.json"


def read_inspect(path: str | os.PathLike) -> dict:
    """Read an ``inspect.json``, checking its schema."""
    from featx.utils import read_record

    return read_record(path, SCHEMA, "inspect record")


def is_inspect_record(path: str | os.PathLike) -> bool:
    """True for a JSON file holding a featx inspect record (no exception)."""
    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        read_inspect(p)
    except Exception:
        return False
    return True


def accuracy_without(y_true, y_pred, leaked) -> dict:
    """Rank-1 over every row and over the rows not in ``leaked`` (row indices)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    keep = np.ones(len(y_true), dtype=bool)
    keep[np.asarray(list(leaked), dtype=np.int64)] = False
    right = y_true == y_pred
    return {
        "rank1": float(right.mean()) if len(right) else None,
        "rank1_without_leaked": float(right[keep].mean()) if keep.any() else None,
        "rows": int(len(right)),
        "rows_without_leaked": int(keep.sum()),
    }
