"""Features <-> Parquet through pyarrow (``pip install "featx[parquet]"``).

Schema: ``path`` string, ``label`` int32, ``label_name`` string, ``split`` string (null when
unknown), ``embedding`` fixed_size_list<float32>[D]; schema metadata ``featx`` holds the JSON of
:func:`featx.convert.common.metadata` (label names in order, backbone settings, the run's config).
Written in row groups of about 64 MiB of embeddings: one group is in memory at a time.
"""

from __future__ import annotations

import json
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

META_KEY = b"featx"


def import_pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise FeatxError('Parquet needs pyarrow: pip install "featx[parquet]"') from None
    return pa, pq


def h5_to_parquet(src: Path, out: Path, *, split: str | None, rows: int | None, progress) -> ConvertResult:
    from tqdm.auto import tqdm

    from featx.outputs import write_error

    pa, pq = import_pyarrow()
    with open_features(src) as st:
        n, dim = len(st), int(st.row_shape[0])
        split = features_split(st.config, src, split)
        meta = metadata(st, src, split)
        schema = pa.schema(
            [("path", pa.string()), ("label", pa.int32()), ("label_name", pa.string()), ("split", pa.string()),
             ("embedding", pa.list_(pa.float32(), dim))],
            metadata={META_KEY: json.dumps(meta, default=str).encode()},
        )
        step = slab_rows(dim, rows)
        paths, labels, names = st.paths, st.labels, st.label_names
        partial = out.with_name(out.name + ".partial")
        groups = 0
        try:
            with pq.ParquetWriter(partial, schema) as w, tqdm(
                total=n, desc="convert", unit="row", dynamic_ncols=True, disable=None if progress is None else not progress
            ) as bar:
                for a, b in iter_slabs(n, step):
                    X = np.ascontiguousarray(st.read(a, b), dtype=np.float32)
                    table = pa.Table.from_arrays(
                        [pa.array(paths[a:b], pa.string()), pa.array(labels[a:b].astype(np.int32)),
                         pa.array([names[k] for k in labels[a:b]], pa.string()),
                         pa.array([split] * (b - a), pa.string()),
                         pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), dim)],
                        schema=schema,
                    )
                    w.write_table(table, row_group_size=step)
                    groups += 1
                    bar.update(b - a)
        except OSError as e:
            partial.unlink(missing_ok=True)
            raise write_error(partial, e) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    replace_into(partial, out)
    return ConvertResult(src, out, n, dim, "hdf5", "parquet", files=[out], row_groups=groups)


def read_meta(pf) -> dict:
    raw = (pf.schema_arrow.metadata or {}).get(META_KEY)
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _dim(pa, field, pf, column: str, src: Path) -> int:
    t = field.type
    if pa.types.is_fixed_size_list(t):
        if not pa.types.is_floating(t.value_type):
            raise FeatxError(f"{src}: column {column!r} holds {t.value_type} values, not floats")
        return int(t.list_size)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        if not pa.types.is_floating(t.value_type):
            raise FeatxError(f"{src}: column {column!r} holds {t.value_type} values, not floats")
        for batch in pf.iter_batches(batch_size=1024, columns=[column]):
            lengths = batch.column(0).value_lengths().to_numpy(zero_copy_only=False)
            valid = ~np.asarray(batch.column(0).is_null().to_numpy(zero_copy_only=False), bool)
            if valid.any():
                return int(lengths[valid][0])
        raise FeatxError(f"{src}: column {column!r} has no embeddings")
    raise FeatxError(f"{src}: column {column!r} must be a list of floats (an embedding per row). Received type {t}")


def _embeddings(pa, arr, dim: int) -> tuple[np.ndarray, list[str]]:
    """(B, dim) float32 and a reason per row ("" = usable) from a list / fixed-size-list array."""
    import pyarrow.compute as pc

    n = len(arr)
    null = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
    lengths = np.full(n, dim) if pa.types.is_fixed_size_list(arr.type) else \
        np.asarray(pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False))
    X = np.zeros((n, dim), np.float32)
    ok = ~null & (lengths == dim)
    if ok.any():
        good = arr.filter(pa.array(ok))
        values = good.flatten().to_numpy(zero_copy_only=False)
        X[ok] = np.asarray(values, np.float32).reshape(-1, dim)
    reasons = finite_reasons(X)
    for i in range(n):
        if null[i]:
            reasons[i] = "no embedding (null)"
        elif lengths[i] != dim:
            reasons[i] = f"embedding has {int(lengths[i])} values, expected {dim}"
    return X, reasons


def parquet_to_h5(src: Path, out: Path, *, split: str | None, rows: int | None, embedding_column: str,
                  label_column: str | None, path_column: str, overwrite: bool, progress) -> ConvertResult:
    pa, pq = import_pyarrow()
    try:
        pf = pq.ParquetFile(src)
    except Exception as e:  # noqa: BLE001 - ArrowInvalid, OSError...: one line
        raise FeatxError(f"{src} is not a readable Parquet file ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    names = pf.schema_arrow.names
    meta = read_meta(pf)
    if embedding_column not in names:
        raise FeatxError(f"{src} has no column {embedding_column!r} (columns: {', '.join(names)}): pass --embedding-column")
    if label_column is None:
        label_column = next((c for c in ("label_name", "label") if c in names), None)
        if label_column is None:
            raise FeatxError(f"{src} has no label_name or label column (columns: {', '.join(names)}): pass --label-column")
    elif label_column not in names:
        raise FeatxError(f"{src} has no column {label_column!r} (columns: {', '.join(names)})")
    dim = _dim(pa, pf.schema_arrow.field(embedding_column), pf, embedding_column, src)
    n = pf.metadata.num_rows
    cols = [label_column] + [c for c in (path_column, "split") if c in names and c != label_column]
    table = pf.read(columns=cols)  # the small columns only; embeddings are streamed below
    labels_raw = table.column(label_column).to_pylist()
    paths = table.column(path_column).to_pylist() if path_column in names else [f"row_{i}" for i in range(n)]
    keep = np.ones(n, bool)
    if split:
        if "split" not in names:
            raise FeatxError(f"{src} has no split column: drop --split")
        keep = np.asarray([s == split for s in table.column("split").to_pylist()], bool)
        if not keep.any():
            found = sorted({str(s) for s in table.column("split").to_pylist()})
            raise FeatxError(f"{src} has no rows of split {split!r} (splits: {', '.join(found)})")
    idx = np.flatnonzero(keep)
    labels, label_names = label_table([labels_raw[i] for i in idx], meta.get("label_names"), str(src))
    config = dict(meta.get("config") or {})
    if meta.get("settings") and not (config.get("backbone") or {}).get("name"):
        config["backbone"] = meta["settings"]
    config["converted_from"] = {"path": str(src), "format": "parquet", "split": split}

    def batches():
        a = 0
        for batch in pf.iter_batches(batch_size=slab_rows(dim, rows), columns=[embedding_column]):
            X, reasons = _embeddings(pa, batch.column(0), dim)
            sel = keep[a : a + len(X)]
            a += len(X)
            if sel.all():
                yield X, reasons
            elif sel.any():
                yield X[sel], [r for r, s in zip(reasons, sel) if s]

    written, skipped = write_h5(out, paths=[str(paths[i]) if paths[i] is not None else f"row_{i}" for i in idx],
                                labels=labels, label_names=label_names, dim=dim, config=config, batches=batches(),
                                overwrite=overwrite, progress=progress, desc="convert")
    return ConvertResult(src, out, written, dim, "parquet", "hdf5", files=[out], skipped=skipped)
