"""Dispatch on the input and output formats (told by the file suffix)."""

from __future__ import annotations

import os
from pathlib import Path

from featx.convert.common import ConvertResult
from featx.errors import FeatxError

#: suffix -> format
SUFFIXES = {".h5": "hdf5", ".hdf5": "hdf5", ".parquet": "parquet", ".pq": "parquet", ".npy": "npy"}
FORMATS = ("hdf5", "parquet", "npy")

__all__ = ["FORMATS", "SUFFIXES", "ConvertResult", "convert", "format_of"]
def format_of(path: str | os.PathLike) -> str:
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise FeatxError(
            f"cannot tell the format of {path} from its suffix: use .h5/.hdf5 (featx features), .parquet or .npy"
        )
    return fmt


def convert(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: str | None = None,
    row_group_rows: int | None = None,
    embedding_column: str = "embedding",
    label_column: str | None = None,
    path_column: str = "path",
    overwrite: bool = False,
    progress: bool | None = None,
) -> ConvertResult:
    """Convert features ``src`` to ``out`` (formats from the suffixes; one side must be HDF5).

    ``split`` names the rows' split when writing Parquet/NumPy (default: the split recorded by
    ``featx build`` for the source images, when the features came from ``train.h5``/``val.h5``/
    ``test.h5``), and keeps only that split's rows when reading Parquet/NumPy. ``row_group_rows``:
    rows per Parquet row group and per slab (default: about 64 MiB of embeddings). The reverse
    direction reads ``embedding_column``, ``label_column`` (default ``label_name``, else ``label``)
    and ``path_column`` (default ``path``; rows are named ``row_N`` without one).
    """
    from featx.outputs import check_not_input, check_overwritable, check_writable, output_lock

    src, out = Path(src), Path(out)
    a, b = format_of(src), format_of(out)
    if a == b or "hdf5" not in (a, b):
        raise FeatxError(f"featx convert goes between featx HDF5 and Parquet or .npy. Received: {a} -> {b}")
    if not src.is_file():
        raise FeatxError(f"{src} does not exist")
    if row_group_rows is not None and int(row_group_rows) < 1:
        raise FeatxError(f"row_group_rows must be >= 1. Received: {row_group_rows}")
    check_not_input(out, src)
    if b == "npy":
        from featx.convert.npy import side_files

        outs = [out, *side_files(out)]
    else:
        outs = [out]
    for p in outs:
        check_not_input(p, src)
        if p.exists():
            check_overwritable(p)
            if not overwrite and b != "hdf5":  # the HDF5 writer answers a finished identical run itself
                from featx.errors import OutputExistsError

                raise OutputExistsError(f"{p} exists; pass --overwrite to replace it")
    check_writable(out)
    with output_lock(out):
        if a == "hdf5" and b == "parquet":
            from featx.convert.parquet import h5_to_parquet

            return h5_to_parquet(src, out, split=split, rows=row_group_rows, progress=progress)
        if a == "hdf5":
            from featx.convert.npy import h5_to_npy

            return h5_to_npy(src, out, split=split, rows=row_group_rows, progress=progress)
        if a == "parquet":
            from featx.convert.parquet import parquet_to_h5

            return parquet_to_h5(src, out, split=split, rows=row_group_rows, embedding_column=embedding_column,
                                 label_column=label_column, path_column=path_column, overwrite=overwrite,
                                 progress=progress)
        from featx.convert.npy import npy_to_h5

        return npy_to_h5(src, out, split=split, rows=row_group_rows, overwrite=overwrite, progress=progress)
