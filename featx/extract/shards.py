"""Shards on disk, their validation, and the merge into one features file.

A sharded run writes shard ``k`` (rows ``[start, stop)`` of the source table) with the ordinary
:class:`~featx.store.StoreWriter` to ``OUT.h5.shards/NNNNN.h5`` (``.partial`` + atomic rename), next
to ``plan.json`` (the shard size and the run's fingerprint). A shard file at its final path is a
finished shard: a rerun redoes only the others, and resumes a shard's partial file where it stopped.

When every shard is finished, each one is validated (complete, same fingerprint, row count) and
copied, in source order, into ``OUT.h5`` through a :class:`StoreWriter` over the whole table: the
merged file has the datasets, attrs and ``source_key`` a single-process run writes, so readers (and
a rerun) cannot tell them apart. Then the shard folder is removed.

Why a copy and not an HDF5 virtual dataset: a VDS keeps every shard file forever (the folder
could not be removed, and moving the output breaks it), h5py reads a missing or unreadable source
as fill values without any error, and the labels / paths / skip list would still need a copy. The
copy costs one sequential read + write of the features (measured in ``scripts/bench_scale.py``),
small next to the extraction itself.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from featx.errors import FeatxError
from featx.extract.sources import Shard, Source
from featx.store import StoreWriter
from featx.store.format import ATTR_COMPLETE, ATTR_SOURCE_KEY
from featx.store.writer import source_key
from featx.utils import atomic_write_json, read_json

PLAN = "plan.json"
#: Rows copied per read during the merge.
MERGE_ROWS = 16384


def shard_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".shards")


def shard_path(out: str | Path, shard: Shard) -> Path:
    return shard_dir(out) / f"{shard.name}.h5"


def shard_config(config: dict, shard: Shard) -> dict:
    """The content definition of one shard: the run's, plus its row range."""
    return {**config, "shard": [shard.start, shard.stop]}


def run_key(source: Source, config: dict) -> str:
    return source_key(source.paths, source.labels, source.label_names, config)


def read_plan(out: str | Path) -> dict | None:
    p = shard_dir(out) / PLAN
    try:
        return read_json(p)
    except (OSError, ValueError):
        return None


def prepare(out: str | Path, key: str, n: int, shard_rows: int | None, *, default: int, overwrite: bool) -> int:
    """Create or reuse ``OUT.h5.shards``; returns the shard size to use (``shard_rows`` or ``default``).

    An existing folder of the same run keeps its shard size (so a rerun finds the same shards even
    without ``--shard-rows``); one of another run is an error unless ``overwrite``.
    """
    folder = shard_dir(out)
    plan = read_plan(out)
    if folder.exists() and (overwrite or plan is None):
        shutil.rmtree(folder)
        plan = None
    if plan is not None:
        if plan.get("source_key") != key or plan.get("rows") != n:
            raise FeatxError(
                f"{folder} holds the shards of an unfinished run with other parameters or sources; "
                "rerun that command to finish it, or pass overwrite=True (--overwrite) to start over"
            )
        if shard_rows is not None and int(shard_rows) != int(plan["shard_rows"]):
            raise FeatxError(
                f"{folder} holds an unfinished run with shard_rows={plan['shard_rows']}; rerun with "
                f"that shard size (or none) to resume it. Received: shard_rows={shard_rows}"
            )
        return int(plan["shard_rows"])
    shard_rows = int(shard_rows or default)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / PLAN, {"source_key": key, "rows": n, "shard_rows": int(shard_rows)})
    return int(shard_rows)


def expected_key(source: Source, config: dict, shard: Shard) -> str:
    t = source.rows(shard.start, shard.stop)
    return source_key(t.paths, t.labels, t.label_names, shard_config(config, shard))


def is_finished(out: str | Path, source: Source, config: dict, shard: Shard) -> bool:
    """Whether shard ``shard`` has a complete file written for this run."""
    return _shard_key(shard_path(out, shard)) == expected_key(source, config, shard)


def _shard_key(path: Path) -> str | None:
    try:
        with h5py.File(path, "r") as f:
            if not bool(f.attrs.get(ATTR_COMPLETE, False)):
                return None
            v = f.attrs.get(ATTR_SOURCE_KEY)
            return v.decode() if isinstance(v, bytes) else (None if v is None else str(v))
    except OSError:
        return None


def _skips(f: h5py.File) -> list[dict]:
    raw = f.attrs.get("skipped")
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return list(json.loads(raw)) if isinstance(raw, str) else []
    except ValueError:
        return []


def validate(out: str | Path, source: Source, config: dict, shards: list[Shard], dim: int) -> None:
    """Check every shard before a merge: present, complete, of this run, with the right rows.

    A missing or wrong shard is an error (never fill values): the message names it.
    """
    for shard in shards:
        p = shard_path(out, shard)
        if not p.exists():
            raise FeatxError(f"shard {p.name} of {out} is missing (rows {shard.start}-{shard.stop - 1}); rerun to redo it")
        if _shard_key(p) != expected_key(source, config, shard):
            raise FeatxError(f"shard {p} is incomplete or from another run; delete it and rerun to redo it")
        with h5py.File(p, "r") as f:
            feats = f["features"]
            skipped = _skips(f)
            if feats.shape != (shard.rows - len(skipped), dim) or len(f["paths"]) != feats.shape[0]:
                raise FeatxError(
                    f"shard {p} holds {feats.shape} features for {shard.rows} sources with {len(skipped)} "
                    f"skipped (expected {dim}-d rows): delete it and rerun"
                )


def merge(
    out: str | Path,
    source: Source,
    config: dict,
    shards: list[Shard],
    *,
    dim: int,
    attrs: dict,
    finish_attrs: Callable[[list[dict]], dict],
    overwrite: bool = False,
) -> Path:
    """Copy the validated shards, in source order, into ``out`` (atomic); remove the shard folder.

    ``finish_attrs(decode_skips)`` returns the attrs of the finished file given the shards' skips
    (with source-wide indices).
    """
    validate(out, source, config, shards, dim)
    writer = StoreWriter(
        out, kind="features", row_shape=(dim,), dtype=np.float32, paths=source.paths, labels=source.labels,
        label_names=source.label_names, config=config, attrs=attrs, overwrite=overwrite,
        slab_rows=MERGE_ROWS,
    )
    if not writer.done:
        with writer:
            first = writer.next_index  # a merge interrupted earlier resumes here
            for shard in shards:
                if shard.stop <= first:
                    continue
                with h5py.File(shard_path(out, shard), "r") as f:
                    _copy_shard(writer, f, shard, first)
            skips = [{**s, "stage": "decode"} for s in writer.skipped]
            writer.finish(attrs=finish_attrs(skips))
    shutil.rmtree(shard_dir(out), ignore_errors=True)
    return writer.path


def _copy_shard(writer: StoreWriter, f: h5py.File, shard: Shard, first: int) -> None:
    feats = f["features"]
    skipped = {int(s["index"]): s["reason"] for s in _skips(f)}
    ok = np.ones(shard.rows, dtype=bool)
    for i in skipped:
        ok[i] = False
    k = int(ok[: max(first - shard.start, 0)].sum())  # stored rows already copied
    i = max(first - shard.start, 0)
    while i < shard.rows:
        if not ok[i]:
            writer.skip(shard.start + i, skipped[i])
            i += 1
            continue
        j = i
        while j < shard.rows and ok[j] and j - i < MERGE_ROWS:
            j += 1
        writer.add_batch(shard.start + i, feats[k : k + (j - i)])
        k += j - i
        i = j
