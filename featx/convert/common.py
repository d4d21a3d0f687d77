"""What both open formats share: the featx metadata they carry and the HDF5 side of the conversion."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from featx import __version__
from featx.errors import FeatxError

#: The split names featx build writes (``train.h5``, ``val.h5``, ``test.h5``).
BUILD_SPLITS = ("train", "val", "test")
#: ``schema`` of the featx metadata carried by Parquet (schema metadata key ``featx``) and ``.featx.json``.
SCHEMA = "featx.features.v1"
#: Target bytes of embeddings per Parquet row group / per slab read or written.
SLAB_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass
class ConvertResult:
    src: Path
    out: Path
    rows: int
    dim: int
    src_format: str
    out_format: str
    files: list[Path] = dataclasses.field(default_factory=list)
    skipped: list[dict] = dataclasses.field(default_factory=list)
    row_groups: int = 0

    def summary(self) -> str:
        extra = f" in {self.row_groups} row groups" if self.row_groups else ""
        skipped = f"; skipped {len(self.skipped)} rows" if self.skipped else ""
        also = "".join(f", {p}" for p in self.files if p != self.out)
        return f"wrote {self.rows} x {self.dim} features{extra} to {self.out}{also} (from {self.src}){skipped}"


def slab_rows(dim: int, rows: int | None = None) -> int:
    return int(rows) if rows else max(1, SLAB_BYTES // (4 * max(1, int(dim))))


def features_split(config: dict, src: Path, split: str | None) -> str | None:
    """The split of a features file's rows: ``split`` if given, else the recorded one, else the name of
    the images file featx build wrote (``train.h5``...) the features came from, else the file's own name."""
    if split:
        return str(split)
    if config.get("split"):
        return str(config["split"])
    source = config.get("source")
    if source and config.get("source_kind") != "folder":
        stem = Path(str(source)).stem
        if stem in BUILD_SPLITS:
            return stem
    return src.stem if src.stem in BUILD_SPLITS else None


def metadata(reader, src: Path, split: str | None) -> dict:
    """The featx metadata of an open features file (what the reverse conversion restores)."""
    from featx.store import feature_settings

    return {
        "schema": SCHEMA,
        "featx_version": __version__,
        "kind": "features",
        "source": str(src),
        "rows": len(reader),
        "dim": int(reader.row_shape[0]),
        "label_names": list(reader.label_names),
        "split": split,
        "settings": feature_settings(reader.attrs) or None,
        "config": reader.config,
    }


def open_features(src: Path):
    from featx.store import open_store

    reader = open_store(src, "features")
    if len(reader.row_shape) != 1:
        reader.close()
        raise FeatxError(f"{src}: features must be (N, D). Received rows of shape {reader.row_shape}")
    return reader


def label_table(values, names_hint: list[str] | None, what: str) -> tuple[np.ndarray, list[str]]:
    """Class numbers and names from a label column (names or numbers); ``names_hint`` keeps featx's order."""
    values = list(values)
    if any(v is None for v in values):
        raise FeatxError(f"{what} has empty labels ({sum(v is None for v in values)} rows): every row needs one")
    if all(isinstance(v, int | np.integer) for v in values):
        labels = np.asarray(values, np.int64)
        if len(labels) and labels.min() < 0:
            raise FeatxError(f"{what}: labels must be >= 0. Received minimum {labels.min()}")
        n = int(labels.max()) + 1 if len(labels) else 0
        names = list(names_hint) if names_hint and len(names_hint) >= n else [str(k) for k in range(n)]
        return labels, names
    texts = [str(v) for v in values]
    names = list(names_hint) if names_hint and set(texts) <= set(names_hint) else sorted(set(texts))
    index = {n: i for i, n in enumerate(names)}
    return np.asarray([index[t] for t in texts], np.int64), names


def write_h5(
    out: Path,
    *,
    paths: list[str],
    labels: np.ndarray,
    label_names: list[str],
    dim: int,
    config: dict,
    batches: Iterable[tuple[np.ndarray, list[str]]],
    overwrite: bool,
    progress: bool | None,
    desc: str,
) -> tuple[int, list[dict]]:
    """Write a featx features file through :class:`featx.store.StoreWriter` (resumable, atomic).

    ``batches`` yields ``(X, reasons)`` for consecutive source rows: ``X`` float32 ``(B, dim)`` and a
    reason per row (``""`` for a usable row; others are skipped and listed). Rows before the writer's
    resume point are read and dropped. Returns ``(rows written, skipped)``.
    """
    from tqdm.auto import tqdm

    from featx.store import StoreWriter

    if len(set(label_names)) < 1:
        raise FeatxError(f"no labelled rows to write to {out}")
    writer = StoreWriter(out, kind="features", row_shape=(dim,), dtype=np.float32, paths=paths, labels=labels,
                         label_names=label_names, config=config, overwrite=overwrite)
    if writer.done:
        import h5py

        with h5py.File(out, "r") as f:
            return int(f["features"].shape[0]), []
    start = writer.next_index
    with writer, tqdm(total=len(paths), initial=start, desc=desc, unit="row", dynamic_ncols=True,
                      disable=None if progress is None else not progress) as bar:
        i = 0
        for X, reasons in batches:
            b = len(X)
            lo = max(start - i, 0)
            if lo < b:
                _feed(writer, i + lo, X[lo:], reasons[lo:])
                bar.update(b - lo)
            i += b
        if i != len(paths):
            raise FeatxError(f"{desc}: read {i} embeddings for {len(paths)} rows")
        skipped = writer.skipped
        writer.finish(attrs={"skipped": skipped, "n_skipped": len(skipped)})
    return writer.progress["rows"], skipped


def _feed(writer, start: int, X: np.ndarray, reasons: list[str]) -> None:
    good = np.array([not r for r in reasons], bool)
    j = 0
    while j < len(X):
        k = j
        while k < len(X) and good[k] == good[j]:
            k += 1
        if good[j]:
            writer.add_batch(start + j, X[j:k])
        else:
            for m in range(j, k):
                writer.skip(start + m, reasons[m])
        j = k


def finite_reasons(X: np.ndarray) -> list[str]:
    ok = np.isfinite(X).all(axis=1)
    return ["" if o else "NaN or infinite values in the embedding" for o in ok]


def iter_slabs(n: int, rows: int) -> Iterator[tuple[int, int]]:
    for a in range(0, n, rows):
        yield a, min(a + rows, n)


def replace_into(partial: Path, final: Path) -> None:
    """fsync ``partial`` and rename it to ``final`` (a file at the final path is whole)."""
    from featx.outputs import write_error

    try:
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, final)
    except OSError as e:
        raise write_error(final, e) from None
