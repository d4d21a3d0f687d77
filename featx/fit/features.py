"""Features files in, for ``featx fit``: load them, check a held-out file matches, read their costs."""

from __future__ import annotations

import os

import numpy as np

from featx.errors import FeatxError
from featx.fit.manifest import check_feature_settings


# ---------------------------------------------------------------------------- files -> classifier
def load_features(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str], dict | None]:
    """``(X, y, label_names, backbone settings or None)`` from a features HDF5."""
    from featx.store import feature_settings, open_store

    with open_store(path, kind="features") as r:
        X, y = r.load()
        return X, y, list(r.label_names), feature_settings(r.attrs) or None


def file_identity(path: str | os.PathLike) -> str:
    """Which features file this is, as written: a featx file's content key and creation time (a
    re-extraction changes it), or the sha256 of a foreign file's bytes."""
    import hashlib

    import h5py

    from featx.store.format import ATTR_CREATED, ATTR_SOURCE_KEY

    try:
        with h5py.File(path, "r") as f:
            key, created = f.attrs.get(ATTR_SOURCE_KEY), f.attrs.get(ATTR_CREATED)
            if key is not None and created is not None:
                return f"{_text(key)}@{_text(created)}"
    except OSError:
        pass
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def check_same_extraction(features, test, names, test_names, dim, test_dim, backbone, test_backbone) -> None:
    """The held-out file must come from the same dataset and the same backbone settings."""
    if test_names != names:
        raise FeatxError(f"{test} has label names {test_names}, {features} has {names}: extract both from one dataset")
    if (test_backbone or {}).get("name") != (backbone or {}).get("name") or tuple(test_dim) != tuple(dim):
        raise FeatxError(
            f"{test} was extracted with {(test_backbone or {}).get('name')} ({test_dim[0] if test_dim else '?'}-d), "
            f"{features} with {(backbone or {}).get('name')} ({dim[0] if dim else '?'}-d): use the same backbone"
        )
    check_feature_settings(backbone, test_backbone, what=str(test), against=str(features))


def extract_costs(features, test) -> dict:
    """What extracting the training (and test) features cost, from their ``extract_timing`` attrs."""
    from featx.results.costs import fit_costs, read_timing
    from featx.store import open_store

    def timing(path):
        with open_store(path, kind="features") as r:
            return read_timing(r.attrs)

    return fit_costs(timing(features), timing(test) if test is not None else None)
