"""``featx extract``: images (a folder, a CSV or an images HDF5) -> backbone features in HDF5.

Reader -> mapper -> writer:

* reader: :mod:`featx.backbones.pipeline` (``tf.data``: parallel decode + resize, batches,
  prefetch) from the first source the output file still lacks;
* mapper: the backbone as one compiled function (preprocessing + ``model(x, training=False)``),
  mixed precision and XLA by default on a GPU;
* writer: :class:`~featx.store.StoreWriter` (``kind="features"``) fed by a background thread, so
  HDF5 writes stay off the critical path. Rows keep the source order; a rerun resumes where an
  interrupted run stopped and ends with the same content.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from featx.data.decode import check_resize
from featx.errors import FeatxError
from featx.store import StoreWriter, open_store, peek_kind
from featx.utils import summarize_skips

#: Rows per durable write: at most this much work is redone after a hard kill.
SLAB_ROWS = 1024


@dataclass
class ExtractResult:
    """What :func:`extract` did."""

    out_path: Path
    rows: int
    skipped: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0
    settings: dict = field(default_factory=dict)
    reused: bool = False
    resumed_from: int = 0
    processed: int = 0
    #: seconds until the first batch's features came back (pipeline fill + tracing/compilation)
    first_batch_seconds: float = 0.0
    #: images/s after the first batch (the rate a long run settles at)
    steady_images_per_second: float = 0.0
    mixed_precision: bool = False
    xla: bool = False

    def summary(self) -> str:
        if self.reused:
            line = f"{self.out_path} is already complete ({self.rows} rows, {self.settings.get('name')}); nothing to do"
        else:
            resumed = f", resumed at source {self.resumed_from}" if self.resumed_from else ""
            line = (
                f"wrote {self.rows} x {self.settings.get('dim')} features ({self.settings.get('name')}, "
                f"{self.settings.get('image_size')}px) to {self.out_path}{resumed}"
            )
        if self.skipped:
            line += f"; {summarize_skips(self.skipped)}"
        return line


@dataclass
class _Source:
    kind: str  # "folder" (a folder or CSV of image files) or "images" (an images HDF5)
    location: str
    paths: list[str]
    labels: list[int]
    label_names: list[str]
    files: list[str] | None = None  # absolute paths to decode (folder sources)
    skipped: list[dict] = field(default_factory=list)  # found but not images (folder sources)


def open_source(src: str | os.PathLike) -> _Source:
    """Describe ``src``: an image folder / CSV (``featx build`` rules) or an images HDF5."""
    p = Path(src)
    if p.is_file() and p.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        kind = peek_kind(p)
        if kind == "features":
            raise FeatxError(
                f"{p} already holds features (written by featx extract); extract needs images: "
                "a folder, a CSV of path,label or an images .h5 written by featx build"
            )
        if kind != "images":
            raise FeatxError(f"{p} is not a featx images file (expected an .h5 written by featx build)")
        with open_store(p, kind="images") as r:
            return _Source("images", str(p.resolve()), r.paths, r.labels.tolist(), r.label_names)
    from featx.data.discover import discover

    d = discover(p)
    d.require_classes(1)
    files = [d.abspath(i) for i in range(len(d.paths))]
    skipped = [{**s, "stage": "discover"} for s in d.skipped]
    return _Source("folder", str(d.root), list(d.paths), d.labels, d.label_names, files, skipped)


class _BackgroundWriter:
    """Feeds a :class:`StoreWriter` from a queue in its own thread (HDF5 writes off the critical path)."""

    def __init__(self, writer: StoreWriter, on_batch: Callable[[int], None] | None = None, depth: int = 8):
        self.writer = writer
        self.on_batch = on_batch
        self.error: BaseException | None = None
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._t = threading.Thread(target=self._run, name="featx-writer", daemon=True)
        self._t.start()

    def put(self, indices: np.ndarray, feats: np.ndarray, reasons: list[str]) -> None:
        if self.error is not None:
            raise self.error
        self._q.put((indices, feats, reasons))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self.error is not None:
                continue  # drain after a failure
            try:
                self._write(*item)
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                self.error = e

    def _write(self, indices: np.ndarray, feats: np.ndarray, reasons: list[str]) -> None:
        ok = np.array([not r for r in reasons], dtype=bool)
        i, n = 0, len(indices)
        while i < n:
            if not ok[i]:
                self.writer.skip(int(indices[i]), reasons[i])
                i += 1
                continue
            j = i
            while j < n and ok[j]:
                j += 1
            self.writer.add_batch(int(indices[i]), feats[i:j])
            i = j
        if self.on_batch is not None:
            self.on_batch(int(indices[-1]) + 1)

    def close(self) -> None:
        """Write everything queued, stop the thread, re-raise its error if any."""
        self._q.put(None)
        self._t.join()
        if self.error is not None:
            raise self.error


def extract(
    src: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    backbone: str = "resnet50",
    weights="imagenet",
    image_size: int | None = None,
    batch_size: int = 32,
    resize: str = "aspect",
    mixed_precision: bool | None = None,
    xla: bool | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    decoder: str = "tfdata",
    slab_rows: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    max_pixels: int | None = None,
) -> ExtractResult:
    """Extract features of every image in ``src`` into ``out_path`` (resumable, atomic).

    ``mixed_precision`` and ``xla`` default to on when TensorFlow sees a GPU and off otherwise.
    ``on_batch(next_index)`` is called (from the writer thread) after each batch reaches the writer.
    Images declaring more than ``max_pixels`` pixels are skipped, never decoded.
    """
    from featx.accel import resolve_accel
    from featx.backbones.backbone import build_backbone
    from featx.backbones.pipeline import image_dataset, iter_features, store_dataset

    check_resize(resize)
    if batch_size < 1:
        raise FeatxError(f"--batch-size must be >= 1. Received: {batch_size}")
    t0 = time.perf_counter()
    source = open_source(src)
    accel = resolve_accel(mixed_precision, xla)
    xla = accel.xla
    bb = build_backbone(backbone, weights=weights, image_size=image_size, mixed_precision=accel.mixed_precision)
    settings = {**bb.settings, "resize": resize if source.kind == "folder" else "stored"}
    config = {
        "source": source.location,
        "source_kind": source.kind,
        "backbone": settings,
        "mixed_precision": bb.mixed_precision,
        "xla": xla,
    }
    attrs = {"source": source.location}  # backbone settings: recorded once, in config (feature_settings reads them)
    writer = StoreWriter(
        out_path,
        kind="features",
        row_shape=(bb.dim,),
        dtype=np.float32,
        paths=source.paths,
        labels=source.labels,
        label_names=source.label_names,
        config=config,
        attrs=attrs,
        overwrite=overwrite,
        slab_rows=slab_rows or max(SLAB_ROWS, batch_size),
    )
    result = ExtractResult(
        out_path=writer.path, rows=0, settings=settings, mixed_precision=bb.mixed_precision, xla=xla
    )
    if writer.done:
        with open_store(writer.path, kind="features") as r:
            result.rows = len(r)
            result.skipped = _stored_skips(r.attrs)
        result.reused = True
        result.seconds = time.perf_counter() - t0
        return result

    start = result.resumed_from = writer.next_index
    n = len(source.paths)
    if source.kind == "folder":
        ds = image_dataset(
            source.files, size=bb.image_size, batch_size=batch_size, resize=resize, start=start, decoder=decoder,
            max_pixels=max_pixels,
        )
    else:
        ds = store_dataset(source.location, batch_size=batch_size, start=start)
    bar = tqdm(
        total=n, initial=start, desc="extract", unit="img", dynamic_ncols=True,
        disable=None if progress is None else not progress,
    )
    t_run = time.perf_counter()
    with writer, bar:
        bg = _BackgroundWriter(writer, on_batch)
        first = 0
        try:
            for idx, feats, reasons in iter_features(bb, ds, batch_size=batch_size, xla=xla, overlap=accel.overlap):
                if not first:
                    first, result.first_batch_seconds = len(idx), time.perf_counter() - t_run
                bg.put(idx, feats, reasons)
                bar.update(len(idx))
                result.processed += len(idx)
        finally:
            bg.close()  # everything computed reaches the writer, even on Ctrl-C
        elapsed = time.perf_counter() - t_run
        skipped = source.skipped + [{**s, "stage": "decode"} for s in writer.skipped]
        writer.finish(attrs={"skipped": skipped, "n_skipped": len(skipped)})
    result.rows = n - len(writer.skipped)
    result.skipped = skipped
    result.seconds = time.perf_counter() - t0
    result.images_per_second = result.processed / elapsed if elapsed > 0 else 0.0
    steady = elapsed - result.first_batch_seconds
    if result.processed > first and steady > 0:
        result.steady_images_per_second = (result.processed - first) / steady
    return result


def _stored_skips(attrs: dict) -> list[dict]:
    import json

    raw = attrs.get("skipped")
    try:
        return list(json.loads(raw)) if isinstance(raw, str) else list(raw or [])
    except ValueError:
        return []
