"""The rows to extract, as a table that splits into contiguous, deterministic shards.

:func:`open_source` describes ``SRC``: an image folder or CSV (the discovery rules of ``featx
build``, sorted, so the same folder always gives the same rows) or an images HDF5 written by
``featx build``. Row ``i`` of the table is source ``i``: its ``path`` (relative to the source),
``label`` and, for folders, the absolute file to decode.

:func:`plan_shards` cuts the rows ``0..n`` into contiguous :class:`Shard` ranges: shard ``k`` is
rows ``[k * rows, (k + 1) * rows)``. The plan depends only on the number of rows and the shard size,
so a rerun finds the same shards and redoes only the unfinished ones.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from featx.errors import FeatxError

#: A shard should be minutes of work (resume granularity and load balance): about this many seconds.
SHARD_SECONDS = 180
#: Rough images/s of one worker at 224 px for a ResNet50-class backbone (measured: ~13 on a 2-core
#: CPU; a few thousand on an H100 with mixed precision + XLA). Smaller images go faster (~pixels).
_RATE_224 = {"cpu": 15.0, "gpu": 2000.0}
#: Bounds of the automatic shard size.
MIN_SHARD_ROWS, MAX_SHARD_ROWS = 64, 500_000


@dataclasses.dataclass
class Source:
    """The rows of one extraction, in source order."""

    kind: str  # "folder" (a folder or CSV of image files) or "images" (an images HDF5)
    location: str
    paths: list[str]
    labels: list[int]
    label_names: list[str]
    files: list[str] | None = None  # absolute paths to decode (folder sources)
    skipped: list[dict] = dataclasses.field(default_factory=list)  # found but not images (folder sources)
    offset: int = 0  # row 0 of this table is row ``offset`` of the whole source (shards)

    def __len__(self) -> int:
        return len(self.paths)

    def rows(self, start: int, stop: int) -> Source:
        """The sub-table of rows ``[start, stop)`` (no discovery skips: they belong to the whole run)."""
        return Source(
            self.kind, self.location, self.paths[start:stop], self.labels[start:stop], self.label_names,
            None if self.files is None else self.files[start:stop], offset=self.offset + start,
        )


@dataclasses.dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of the source table; ``index`` names its file (``NNNNN.h5``)."""

    index: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def name(self) -> str:
        return f"{self.index:05d}"


def open_source(src: str | os.PathLike) -> Source:
    """Describe ``src``: an image folder / CSV (``featx build`` rules) or an images HDF5."""
    from featx.store import open_store, peek_kind

    p = Path(src)
    if p.is_file() and p.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        kind = peek_kind(p)
        if kind == "features":
            raise FeatxError(
                f"{p} already holds features (written by featx extract); extract needs images: "
                "a folder, a CSV of path,label or an images .h5 written by featx build"
            )
        if kind not in (None, "images"):
            raise FeatxError(f"{p} is not a featx images file (expected an .h5 written by featx build)")
        # kind None: a foreign file (e.g. the book's HDF5DatasetWriter images); the store validates it
        with open_store(p, kind="images") as r:
            return Source("images", str(p.resolve()), r.paths, r.labels.tolist(), r.label_names)
    from featx.data.discover import discover

    d = discover(p)
    d.require_classes(1)
    files = [d.abspath(i) for i in range(len(d.paths))]
    skipped = [{**s, "stage": "discover"} for s in d.skipped]
    return Source("folder", str(d.root), list(d.paths), d.labels, d.label_names, files, skipped)


def default_shard_rows(n: int, *, workers: int = 1, gpu: bool = False, image_size: int = 224) -> int:
    """Rows per shard: about :data:`SHARD_SECONDS` of one worker's work, and at least two shards
    per worker when there are enough rows (so a slow or lost worker does not hold the whole run)."""
    rate = _RATE_224["gpu" if gpu else "cpu"] * (224 / max(int(image_size), 8)) ** 2
    rows = int(rate * SHARD_SECONDS)
    rows = min(rows, math.ceil(max(n, 1) / (2 * max(workers, 1))))
    return int(min(MAX_SHARD_ROWS, max(MIN_SHARD_ROWS, rows)))


def plan_shards(n: int, shard_rows: int) -> list[Shard]:
    """Contiguous shards of ``shard_rows`` rows covering ``0..n`` (the last one may be shorter)."""
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be >= 1. Received: shard_rows={shard_rows}")
    return [Shard(k, a, min(a + shard_rows, n)) for k, a in enumerate(range(0, n, shard_rows))]
