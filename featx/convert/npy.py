"""Features <-> NumPy: ``STEM.npy`` (float32 ``(N, D)``), ``STEM.labels.csv`` and ``STEM.featx.json``.

``STEM.labels.csv`` has one row per matrix row: ``path,label,label_name,split``.
``STEM.featx.json`` holds the featx metadata (label names in order, backbone settings, config) and
names the two files it vouches for. The matrix is written slab by slab into a memory-mapped
``.npy.partial`` and renamed when whole; the side files are written atomically after it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from featx.convert.common import (
    ConvertResult,
    features_split,
    finite_reasons,
    iter_slabs,
    label_table,
    metadata,
    open_features,
    replace_into,
    slab_rows,
    write_h5,
)
from featx.errors import FeatxError

CSV_COLUMNS = ("path", "label", "label_name", "split")


def side_files(npy: Path) -> tuple[Path, Path]:
    """``feats.npy`` -> ``(feats.labels.csv, feats.featx.json)``."""
    npy = Path(npy)
    stem = npy.name[: -len(npy.suffix)]
    return npy.with_name(stem + ".labels.csv"), npy.with_name(stem + ".featx.json")


def h5_to_npy(src: Path, out: Path, *, split: str | None, rows: int | None, progress) -> ConvertResult:
    from tqdm.auto import tqdm

    from featx.outputs import write_error
    from featx.utils import atomic_write_json, atomic_write_text

    labels_csv, meta_json = side_files(out)
    with open_features(src) as st:
        n, dim = len(st), int(st.row_shape[0])
        split = features_split(st.config, src, split)
        meta = metadata(st, src, split)
        partial = out.with_name(out.name + ".partial")
        try:
            mm = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(n, dim))
            with tqdm(total=n, desc="convert", unit="row", dynamic_ncols=True,
                      disable=None if progress is None else not progress) as bar:
                for a, b in iter_slabs(n, slab_rows(dim, rows)):
                    mm[a:b] = st.read(a, b)
                    bar.update(b - a)
            mm.flush()
            del mm
        except OSError as e:
            partial.unlink(missing_ok=True)
            raise write_error(partial, e) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(CSV_COLUMNS)
        names = st.label_names
        for p, y in zip(st.paths, st.labels):
            w.writerow([p, int(y), names[int(y)], split or ""])
    replace_into(partial, out)
    atomic_write_text(labels_csv, buf.getvalue())
    atomic_write_json(meta_json, {**meta, "files": [out.name, labels_csv.name]})
    return ConvertResult(src, out, n, dim, "hdf5", "npy", files=[out, labels_csv, meta_json])


def _labels_csv(npy: Path) -> Path:
    own, _ = side_files(npy)
    if own.is_file():
        return own
    shared = npy.with_name("labels.csv")
    if shared.is_file():
        return shared
    raise FeatxError(f"{npy} needs its labels: {own.name} (or labels.csv) beside it, with columns path,label_name (or label)")


def npy_to_h5(src: Path, out: Path, *, split: str | None, rows: int | None, overwrite: bool, progress) -> ConvertResult:
    from featx.utils import read_json

    try:
        X = np.load(src, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise FeatxError(f"{src} is not a readable .npy file ({e})") from None
    if X.ndim != 2 or not np.issubdtype(X.dtype, np.floating):
        raise FeatxError(f"{src} must hold an (N, D) float matrix. Received shape {X.shape}, dtype {X.dtype}")
    n, dim = X.shape
    _, meta_json = side_files(src)
    meta = {}
    if meta_json.is_file():
        try:
            meta = read_json(meta_json)
        except ValueError:
            raise FeatxError(f"{meta_json} is not valid JSON") from None
    table_path = _labels_csv(src)
    with open(table_path, newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    if len(table) != n:
        raise FeatxError(f"{table_path} has {len(table)} rows, {src} has {n}")
    cols = set(table[0]) if table else set()
    column = "label_name" if "label_name" in cols else "label" if "label" in cols else None
    if column is None:
        raise FeatxError(f"{table_path} needs a label_name or label column (columns: {', '.join(sorted(cols))})")
    keep = np.ones(n, bool)
    if split:
        keep = np.asarray([r.get("split") == split for r in table], bool)
        if not keep.any():
            raise FeatxError(f"{table_path} has no rows of split {split!r}")
    idx = np.flatnonzero(keep)
    raw = [table[i][column] for i in idx]
    if column == "label":
        try:
            raw = [int(v) for v in raw]
        except ValueError:
            pass  # names in a "label" column
    labels, label_names = label_table([v if v != "" else None for v in raw], meta.get("label_names"), str(table_path))
    paths = [table[i].get("path") or f"row_{i}" for i in idx]
    config = dict(meta.get("config") or {})
    if meta.get("settings") and not (config.get("backbone") or {}).get("name"):
        config["backbone"] = meta["settings"]
    config["converted_from"] = {"path": str(src), "format": "npy", "split": split}

    def batches():
        for a, b in iter_slabs(n, slab_rows(dim, rows)):
            sel = keep[a:b]
            if not sel.any():
                continue
            block = np.asarray(X[a:b], np.float32)[sel]
            yield block, finite_reasons(block)

    written, skipped = write_h5(out, paths=paths, labels=labels, label_names=label_names, dim=dim, config=config,
                                batches=batches(), overwrite=overwrite, progress=progress, desc="convert")
    return ConvertResult(src, out, written, dim, "npy", "hdf5", files=[out], skipped=skipped)
