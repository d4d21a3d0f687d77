"""``featx build``: labelled images -> ``train.h5``, ``val.h5``, ``test.h5``, ``mean.json``, ``build.json``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from featx import __version__
from featx.data.decode import check_resize
from featx.data.discover import Discovery, discover
from featx.data.pool import decode_into_slabs, default_workers
from featx.data.splits import shuffle_preset, stratified_split
from featx.errors import FeatxError
from featx.outputs import check_not_input, check_overwritable, check_writable, output_lock
from featx.store import StoreWriter
from featx.utils import atomic_write_json, read_json, summarize_skips

SPLITS = ("train", "val", "test")
#: Rows decoded into one slab buffer and written at once: at most 64 rows and 16 MiB (64 rows of
#: 256 px are 12 MiB; 3 buffers are in flight), and at most the writer's slab. Small enough that
#: little waits behind the last slab and an interrupt loses little, large enough that the progress
#: record is rewritten a few times a second at most.
SLAB_ROWS = 64
SLAB_BUFFER_BYTES = 16 * 1024 * 1024


@dataclass
class BuildResult:
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    mean_rgb: list[float] | None = None
    seconds: float = 0.0
    images_per_second: float = 0.0
    reused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        total = sum(sum(c.values()) for c in self.counts.values())
        parts = ", ".join(f"{s} {sum(self.counts[s].values())}" for s in SPLITS if s in self.counts)
        line = f"wrote {total} images ({parts}) to {self.out_dir}"
        if self.skipped:
            line += f"; {summarize_skips(self.skipped)[:-1]}; listed in build.json)"
        return line


def plan_splits(d: Discovery, *, val: float, test: float, seed: int) -> dict[str, np.ndarray]:
    """Indices into ``d.paths`` for each split: the preset folders, or a stratified split."""
    if d.splits is not None:
        return {s: shuffle_preset(d.splits.get(s, []), seed) for s in SPLITS}
    return stratified_split(d.labels, val=val, test=test, seed=seed)


def build(
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    size: int = 256,
    resize: str = "aspect",
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 42,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    slab_rows: int | None = None,
    max_pixels: int | None = None,
) -> BuildResult:
    """Write the images of ``src`` into the HDF5 store in ``out_dir``. Resumable and atomic per file.

    Images whose header declares more than ``max_pixels`` pixels are skipped, never decoded.
    """
    check_resize(resize)
    if size < 8:
        raise FeatxError(f"--size must be at least 8 pixels. Received: {size}")
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    check_not_input(out_dir, src)
    with output_lock(out_dir):
        return _build(src, out_dir, t0, size=size, resize=resize, val=val, test=test, seed=seed, workers=workers,
                      overwrite=overwrite, progress=progress, slab_rows=slab_rows, max_pixels=max_pixels)


def _build(src, out_dir: Path, t0: float, *, size, resize, val, test, seed, workers, overwrite, progress,
           slab_rows, max_pixels) -> BuildResult:
    d = discover(src)
    d.require_classes(2)
    splits = plan_splits(d, val=val, test=test, seed=seed)
    if not len(splits["train"]):
        raise FeatxError(f"no training images in {d.root}")
    if d.layout != "csv":  # a folder source is rescanned on rerun: outputs inside it would change it
        check_not_input(out_dir, d.root)
    check_writable(out_dir, folder=True)
    for name in ("mean.json", "build.json"):
        check_overwritable(out_dir / name)  # rewritten by every build: only featx's own
    workers = workers or default_workers()
    content = {"src": str(d.root), "layout": d.layout, "size": size, "resize": resize, "val": val, "test": test, "seed": seed}
    result = BuildResult(out_dir=out_dir, skipped=[{**s, "stage": "discover"} for s in d.skipped])
    label_names = d.label_names
    all_labels = np.asarray(d.labels)
    decoded = 0

    for split in SPLITS:
        idx = splits[split]
        if len(idx) == 0:
            continue
        paths = [d.paths[i] for i in idx]
        writer = StoreWriter(
            out_dir / f"{split}.h5",
            kind="images",
            row_shape=(size, size, 3),
            dtype=np.uint8,
            paths=paths,
            labels=all_labels[idx],
            label_names=label_names,
            config={**content, "split": split},
            compute_mean=(split == "train"),
            overwrite=overwrite,
            slab_rows=slab_rows,
        )
        if writer.done:
            result.reused.append(split)
        else:
            with writer:
                start = writer.next_index
                abs_paths = [str(d.root / p) for p in paths]
                bar = tqdm(
                    total=len(paths), initial=start, desc=f"build {split}", unit="img",
                    disable=None if progress is None else not progress, dynamic_ncols=True,
                )

                def emit(first, n, rows, skips, sums, writer=writer, bar=bar):
                    writer.write_slab(first, n, rows, skips, sums)
                    bar.update(n)

                with bar:
                    # decoded straight into slab buffers on `workers` threads; each slab is written
                    # (HDF5, mean sums, progress record) here while the threads fill the next ones
                    decoded += decode_into_slabs(
                        abs_paths, emit, size=size, resize=resize, start=start, workers=workers,
                        max_pixels=max_pixels, rows=min(writer.slab_rows, SLAB_ROWS, max(1, SLAB_BUFFER_BYTES // (size * size * 3))),
                        sums=writer.compute_mean,
                    )
                writer.finish()
        result.files[split] = writer.path
        result.skipped.extend(
            {"path": s["path"], "reason": s["reason"], "split": split, "stage": "decode"} for s in writer.skipped
        )

    result.seconds = time.perf_counter() - t0
    result.images_per_second = decoded / result.seconds if result.seconds > 0 else 0.0
    _write_reports(result, d, label_names, {**content, "max_pixels": max_pixels}, workers)
    return result


def _write_reports(result: BuildResult, d: Discovery, label_names: list[str], content: dict, workers: int) -> None:
    from featx.store import open_store

    counts: dict[str, dict[str, int]] = {}
    for split, path in result.files.items():
        with open_store(path, kind="images") as r:
            bc = np.bincount(r.labels, minlength=len(label_names))
            counts[split] = {name: int(c) for name, c in zip(label_names, bc)}
            if split == "train":
                result.mean_rgb = r.mean_rgb
    result.counts = counts
    build_json = result.out_dir / "build.json"
    if result.reused and build_json.exists():
        # skips of splits finished in an earlier run are kept from that run's report
        try:
            old = read_json(build_json).get("skipped", [])
        except (OSError, ValueError):
            old = []
        result.skipped.extend(s for s in old if s.get("split") in result.reused)
    if result.mean_rgb is not None:
        r, g, b = result.mean_rgb
        atomic_write_json(result.out_dir / "mean.json", {"R": r, "G": g, "B": b})
    atomic_write_json(
        build_json,
        {
            "featx_version": __version__,
            "config": {**content, "workers": workers},
            "source": str(d.root),
            "layout": d.layout,
            "label_names": label_names,
            "counts": counts,
            "totals": {s: sum(c.values()) for s, c in counts.items()},
            "files": {s: str(p) for s, p in result.files.items()},
            "skipped_count": len(result.skipped),
            "skipped": result.skipped,
            "seconds": round(result.seconds, 3),
            "images_per_second": round(result.images_per_second, 2),
            "reused_splits": result.reused,
        },
    )
