"""The features files ``featx inspect`` compares, one split each, checked against each other.

A split is named by what its file records (``config["split"]``, or the split of the images file
it was extracted from, as ``featx build`` names them), else by its file stem (``train.h5`` ->
``train``). Training splits (label issues, the side leakage is measured against) are the ones
named ``train...``, else the first file. Any features file the store reads is accepted: featx's
own, merged shards, and book-format files (``features`` + ``labels``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from featx.errors import FeatxError

#: split names ``featx build`` writes (a features file extracted from ``data/val.h5`` is ``val``)
BUILD_SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Split:
    name: str
    path: Path
    X: np.ndarray
    y: np.ndarray
    paths: list[str]
    label_names: list[str]
    backbone: dict | None
    #: where the rows' pixels may be found: ("images", store path) or ("folder", root) or None
    source: tuple[str, str] | None
    train: bool = False

    def __len__(self) -> int:
        return len(self.y)


def split_name(path: Path, config: dict) -> str:
    name = config.get("split")
    if isinstance(name, str) and name:
        return name
    src = config.get("source")
    if config.get("source_kind") == "images" and isinstance(src, str) and Path(src).stem in BUILD_SPLITS:
        return Path(src).stem
    return path.stem


def load_split(path: str | os.PathLike) -> Split:
    from featx.store import feature_settings, open_store

    p = Path(path)
    with open_store(p, kind="features") as r:
        X, y = r.load()
        config = r.config if isinstance(r.config, dict) else {}
        kind, src = config.get("source_kind"), config.get("source")
        source = (kind, src) if kind in ("images", "folder") and isinstance(src, str) else None
        return Split(split_name(p, config), p, X, y, r.paths, list(r.label_names), feature_settings(r.attrs) or None,
                     source)


def load_splits(paths, train: list[str] | None = None) -> list[Split]:
    """Load every file as a split; check they come from one dataset and one extraction.

    ``train``: the training splits, by name or by file (default: names starting with ``train``,
    else the first file). Names are made unique (``test``, ``test-2``) when two files would share one.
    """
    from featx.fit import check_same_extraction

    if not paths:
        raise FeatxError("give at least one features file")
    seen: dict[Path, Path] = {}
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise FeatxError(f"{p} is given twice; give each split once")
        seen[key] = Path(p)
    splits = [load_split(p) for p in paths]
    names: set[str] = set()
    for s in splits:
        base, k = s.name, 2
        while s.name in names:
            s.name, k = f"{base}-{k}", k + 1
        names.add(s.name)
    first = splits[0]
    for s in splits[1:]:
        if s.X.shape[1:] != first.X.shape[1:]:
            raise FeatxError(
                f"mismatched feature dimensions: {first.path} has {first.X.shape[1]}-d features, {s.path} "
                f"{s.X.shape[1]}-d: every split must come from the same extraction"
            )
        check_same_extraction(first.path, s.path, first.label_names, s.label_names, first.X.shape[1:], s.X.shape[1:],
                              first.backbone, s.backbone)
    for s in splits:
        if s.X.ndim != 2 or not len(s):
            raise FeatxError(f"{s.path} holds no feature rows ({s.X.shape})")
        if not np.isfinite(s.X).all():
            raise FeatxError(f"{s.path}: features contain NaN or infinite values; re-extract them")
    by_file = {s.path.resolve(): s.name for s in splits}
    wanted = [by_file.get(Path(t).resolve(), str(t)) for t in train] if train else (
        [s.name for s in splits if s.name.startswith("train")] or [first.name])
    unknown = [t for t in wanted if t not in names]
    if unknown:
        raise FeatxError(f"no split named {', '.join(unknown)} (the splits are {', '.join(s.name for s in splits)})")
    for s in splits:
        s.train = s.name in wanted
    return splits
