"""The local runner: reader -> mapper -> writer over one table of rows, in this process.

``tf.data`` decodes and resizes in parallel (or reads an images HDF5 in contiguous slabs), the
:class:`~featx.extract.mapper.FeatureMapper` runs the compiled forward pass, and a
:class:`~featx.extract.writer.BackgroundWriter` stores the rows with a
:class:`~featx.store.StoreWriter` (partial file + atomic rename; a rerun resumes where a killed
run stopped). ``featx extract --engine local`` runs it once over the whole source; each Ray worker
runs it on whole shards.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from featx.extract.mapper import FeatureMapper
from featx.extract.sources import Source
from featx.extract.writer import BackgroundWriter
from featx.store import StoreWriter

#: Rows per durable write: at most this much work is redone after a hard kill.
SLAB_ROWS = 1024


@dataclasses.dataclass
class LocalRun:
    """What one local run over a table did."""

    path: Path
    rows: int = 0  # rows in the finished file
    processed: int = 0  # sources run through the model by this call
    resumed_from: int = 0
    reused: bool = False  # the file was already complete
    skipped: list[dict] = dataclasses.field(default_factory=list)  # decode skips (table indices)
    seconds: float = 0.0  # pixels -> stored features, this call
    first_batch_seconds: float = 0.0
    steady_images_per_second: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


def run_local(
    table: Source,
    out_path: str | Path,
    *,
    config: dict,
    mapper: FeatureMapper,
    batch_size: int,
    resize: str = "aspect",
    decoder: str = "auto",
    max_pixels: int | None = None,
    overlap: bool = False,
    slab_rows: int | None = None,
    overwrite: bool = False,
    allow_empty: bool = False,
    attrs: dict | None = None,
    finish_attrs: Callable[[LocalRun], dict] | None = None,
    on_rows: Callable[[int], None] | None = None,
    on_start: Callable[[LocalRun], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> LocalRun:
    """Extract every row of ``table`` into ``out_path`` (resumable, atomic).

    ``config`` defines the content (stored, and compared on resume); ``finish_attrs(run)`` gives
    the attrs written when the file completes. ``on_rows(n)`` is called in this thread as batches
    come back (progress bars), ``on_start(run)`` once the resume point is known; ``on_batch(next_index)`` from the writer thread once a batch reached
    the writer, with ``next_index`` counted in the whole source (``table.offset`` added).
    """
    from featx.extract.reader import image_dataset, store_dataset

    mapper.setup()  # a backbone that cannot be built (no weights offline...) leaves no partial file behind
    writer = StoreWriter(
        out_path, kind="features", row_shape=(mapper.dim,), dtype=np.float32,
        paths=table.paths, labels=table.labels, label_names=table.label_names,
        config=config, attrs=attrs, overwrite=overwrite, slab_rows=slab_rows or max(SLAB_ROWS, batch_size),
    )
    run = LocalRun(path=writer.path)
    if writer.done:
        run.reused = True
        return run
    start = run.resumed_from = writer.next_index
    if on_start is not None:
        on_start(run)
    size = int(mapper.settings["image_size"])
    if table.kind == "folder":
        ds = image_dataset(table.files, size=size, batch_size=batch_size, resize=resize, start=start, decoder=decoder,
                           max_pixels=max_pixels)
    else:
        ds = store_dataset(table.location, batch_size=batch_size, start=table.offset + start,
                           stop=table.offset + len(table), offset=table.offset)
    offset = table.offset
    hook = None if on_batch is None else (lambda i: on_batch(i + offset))
    t0 = time.perf_counter()
    first = 0
    with writer:
        bg = BackgroundWriter(writer, hook)
        try:
            for idx, feats, reasons in mapper.iter_features(ds, overlap=overlap):
                if not first:
                    first, run.first_batch_seconds = len(idx), time.perf_counter() - t0
                bg.put(idx, feats, reasons)
                run.processed += len(idx)
                if on_rows is not None:
                    on_rows(len(idx))
        finally:
            bg.close()  # everything computed reaches the writer, even on Ctrl-C
        writer.flush()
        run.seconds = time.perf_counter() - t0
        run.skipped = writer.skipped
        run.rows = len(table) - len(run.skipped)
        writer.finish(attrs=finish_attrs(run) if finish_attrs else None, allow_empty=allow_empty)
    steady = run.seconds - run.first_batch_seconds
    if run.processed > first and steady > 0:
        run.steady_images_per_second = (run.processed - first) / steady
    return run
