"""``extract()``: a source -> a features file, on the local runner or on Ray, whole or in shards.

1. :class:`~featx.extract.config.ExtractConfig` validates the parameters once;
2. the output is locked for the whole run (:func:`featx.outputs.output_lock`: shards and merge
   included); a finished output with the same content definition returns at once, before
   TensorFlow or the backbone is loaded;
3. :func:`featx.runtime.accel.resolve_accel` decides mixed precision / XLA / overlap (from the Ray
   cluster's GPUs for the Ray engine);
4. ``engine="local"`` without ``shard_rows`` runs :func:`~featx.extract.local.run_local` over the
   whole table straight into the output (resumable at slab granularity); otherwise the table is cut
   into shards (:mod:`featx.extract.sources`), the unfinished ones run in this process or on Ray
   actors (:mod:`featx.extract.ray_runner`) and the shards are merged (:mod:`featx.extract.shards`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import h5py

from featx.backbones.registry import DEFAULT_BACKBONE
from featx.constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_EXTRACT_BATCH_SIZE, DEFAULT_WEIGHTS
from featx.errors import OutputExistsError
from featx.extract import shards as shardlib
from featx.extract.config import ExtractConfig
from featx.extract.local import run_local
from featx.extract.mapper import FeatureMapper
from featx.extract.sources import Source, default_shard_rows, open_source, plan_shards
from featx.store.format import ATTR_COMPLETE, ATTR_CONFIG, ATTR_SOURCE_KEY
from featx.utils import summarize_skips

#: Attr holding the extraction timing (JSON; read by ``featx report`` / fit's end-to-end costs).
ATTR_TIMING = "extract_timing"


@dataclasses.dataclass
class ExtractResult:
    """What :func:`extract` did."""

    out_path: Path
    rows: int
    skipped: list[dict] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0
    settings: dict = dataclasses.field(default_factory=dict)
    reused: bool = False
    resumed_from: int = 0
    processed: int = 0
    #: seconds until the first batch's features came back (pipeline fill + tracing/compilation)
    first_batch_seconds: float = 0.0
    #: images/s after the first batch (the rate a long run settles at)
    steady_images_per_second: float = 0.0
    mixed_precision: bool = False
    xla: bool = False
    engine: str = "local"
    workers: int = 1
    #: sharded runs: shards planned, shards run by this call (the others were already finished)
    shards: int = 0
    shards_run: list[int] = dataclasses.field(default_factory=list)
    #: Ray: seconds to start the actors and build their backbones (cold start, not in images/s)
    start_seconds: float = 0.0
    merge_seconds: float = 0.0
    timing: dict = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        if self.reused:
            line = f"{self.out_path} is already complete ({self.rows} rows, {self.settings.get('name')}); nothing to do"
        else:
            resumed = f", resumed at source {self.resumed_from}" if self.resumed_from else ""
            if self.shards:
                done = self.shards - len(self.shards_run)
                resumed = f", {self.shards} shards ({done} already done)" if done else f", {self.shards} shards"
            line = (
                f"wrote {self.rows} x {self.settings.get('dim')} features ({self.settings.get('name')}, "
                f"{self.settings.get('image_size')}px) to {self.out_path}{resumed}"
            )
        if self.skipped:
            line += f"; {summarize_skips(self.skipped)}"
        return line


def extract(
    src: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    backbone: str = DEFAULT_BACKBONE,
    weights=DEFAULT_WEIGHTS,
    image_size: int | None = None,
    batch_size: int = DEFAULT_EXTRACT_BATCH_SIZE,
    resize: str = "aspect",
    mixed_precision: bool | None = None,
    xla: bool | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    decoder: str = "auto",
    slab_rows: int | None = None,
    on_batch: Callable[[int], None] | None = None,
    engine: str = "local",
    address: str | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    workers: int | None = None,
    shard_rows: int | None = None,
    max_pixels: int | None = None,
) -> ExtractResult:
    """Extract features of every image in ``src`` into ``out_path`` (resumable, atomic, locked).

    ``mixed_precision`` and ``xla`` default to on when there is a GPU and off otherwise.
    ``engine="ray"`` runs shards on Ray actors (``address``: ``None`` starts a local Ray, ``"auto"``
    joins a cluster, giving up after ``connect_timeout`` seconds when it does not answer); ``workers``
    actors (default one per GPU, or 1); ``shard_rows`` rows per shard.
    ``on_batch(next_index)`` is called (from a writer thread, in the worker that ran the batch) after
    each batch reaches the writer; ``next_index`` counts rows of the whole source. Images declaring
    more than ``max_pixels`` pixels are skipped, never decoded.
    """
    config = ExtractConfig(
        backbone=backbone, weights=weights, image_size=image_size, batch_size=batch_size, resize=resize,
        mixed_precision=mixed_precision, xla=xla, decoder=decoder, engine=engine, address=address,
        connect_timeout=connect_timeout, workers=workers, shard_rows=shard_rows, slab_rows=slab_rows, max_pixels=max_pixels,
    )
    return run_extract(src, out_path, config, overwrite=overwrite, progress=progress, on_batch=on_batch)


def run_extract(
    src: str | os.PathLike,
    out_path: str | os.PathLike,
    cfg: ExtractConfig,
    *,
    overwrite: bool = False,
    progress: bool | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ExtractResult:
    """:func:`extract` with a validated :class:`ExtractConfig`."""
    from featx.outputs import check_not_input, check_overwritable, check_writable, output_lock

    t0 = time.perf_counter()
    out = Path(out_path)
    check_not_input(out, src)
    if cfg.engine == "ray":
        from featx.extract.ray_runner import require_ray

        require_ray()  # one line before any work when Ray is missing
    with output_lock(out):
        source = open_source(src)
        settings, prebuilt = cfg.backbone_settings(source.kind)
        base = {"source": source.location, "source_kind": source.kind, "backbone": settings}
        result = ExtractResult(out_path=out, rows=0, settings=settings, engine=cfg.engine)
        if not overwrite:
            done = _finished(out, source, base, cfg)
            if done is not None:
                result.rows, result.skipped, result.reused = done["rows"], done["skipped"], True
                result.seconds = time.perf_counter() - t0
                return result
            if out.exists() and _sharded(cfg, out):  # before hours of shards; the local engine's writer
                raise OutputExistsError(                # refuses after building the backbone (as featx 0.1 did)
                    f"{out} exists and was made with different parameters or sources; pass --overwrite to replace it"
                )
        else:
            check_overwritable(out)
        check_writable(out)
        if cfg.engine == "ray":
            from featx.extract.ray_runner import RayConnection

            with RayConnection(cfg.address, timeout=cfg.connect_timeout) as conn:
                return _run(source, out, cfg, base, prebuilt, result, t0, overwrite, progress, on_batch, conn)
        return _run(source, out, cfg, base, prebuilt, result, t0, overwrite, progress, on_batch, None)


def _run(source: Source, out: Path, cfg: ExtractConfig, base: dict, prebuilt, result: ExtractResult, t0: float,
         overwrite: bool, progress, on_batch, conn) -> ExtractResult:
    from tqdm.auto import tqdm

    from featx.runtime.accel import resolve_accel

    accel = resolve_accel(cfg.mixed_precision, cfg.xla, gpus=None if conn is None else conn.gpus)
    mixed = accel.mixed_precision and not cfg.is_saved_model  # a saved model keeps its own dtype policy
    config = {**base, "mixed_precision": mixed, "xla": accel.xla}
    result.mixed_precision, result.xla = mixed, accel.xla
    mapper = FeatureMapper(base["backbone"], mixed_precision=mixed, xla=accel.xla, batch_size=cfg.batch_size,
                           backbone=prebuilt)
    run_kwargs = {"batch_size": cfg.batch_size, "resize": cfg.resize, "decoder": cfg.decoder,
                  "max_pixels": cfg.max_pixels, "overlap": accel.overlap, "slab_rows": cfg.slab_rows, "on_batch": on_batch}
    n = len(source)
    bar = tqdm(total=n, desc="extract", unit="img", dynamic_ncols=True,
               disable=None if progress is None else not progress)
    sharded = _sharded(cfg, out)

    def final_attrs(decode_skips: list[dict], timing: dict) -> dict:
        skipped = source.skipped + decode_skips
        result.skipped = skipped
        result.timing = timing
        return {"skipped": skipped, "n_skipped": len(skipped), ATTR_TIMING: timing}

    def timing(seconds: float, images: int, device: str, params: int) -> dict:
        return {"seconds": round(seconds, 3), "images": int(images),
                "images_per_second": round(images / seconds, 3) if seconds > 0 else 0.0,
                "device": device, "backbone_params": int(params), "engine": cfg.engine, "workers": result.workers}

    with bar:
        if not sharded:
            def on_start(run):
                bar.update(run.resumed_from)

            run = run_local(
                source, out, config=config, mapper=mapper, overwrite=overwrite, attrs={"source": source.location},
                on_rows=bar.update, on_start=on_start, **run_kwargs,
                finish_attrs=lambda r: final_attrs(
                    [{**s, "stage": "decode"} for s in r.skipped],
                    timing(r.seconds, r.processed, accel.device, mapper.count_params())),
            )
            result.resumed_from, result.processed = run.resumed_from, run.processed
            result.first_batch_seconds, result.steady_images_per_second = run.first_batch_seconds, run.steady_images_per_second
            result.images_per_second = run.images_per_second
            result.rows = run.rows
        else:
            key = shardlib.run_key(source, config)
            workers = cfg.workers or (1 if conn is None else max(1, conn.gpus))
            result.workers = workers
            default = default_shard_rows(n, workers=workers, gpu=accel.gpus > 0, image_size=base["backbone"]["image_size"])
            rows_per_shard = shardlib.prepare(out, key, n, cfg.shard_rows, default=default, overwrite=overwrite)
            plan = plan_shards(n, rows_per_shard)
            todo = [s for s in plan if not shardlib.is_finished(out, source, config, s)]
            result.shards, result.shards_run = len(plan), [s.index for s in todo]
            bar.update(sum(s.rows for s in plan) - sum(s.rows for s in todo))
            params, device = 0, accel.device
            t_run = time.perf_counter()
            if conn is not None:
                from featx.extract.ray_runner import run_ray

                rr = run_ray(conn, source, out, todo, config=config, mapper=mapper, workers=workers,
                             run_kwargs=run_kwargs, bar=bar)
                result.processed, result.start_seconds = rr.processed, rr.start_seconds
                params, device = rr.params, f"ray: {rr.workers} x {rr.device}" if rr.workers else device
                work_seconds = rr.seconds
            else:
                work_seconds = 0.0
                for s in todo:
                    run = run_local(
                        source.rows(s.start, s.stop), shardlib.shard_path(out, s), config=shardlib.shard_config(config, s),
                        mapper=mapper, on_rows=bar.update, allow_empty=True,
                        finish_attrs=lambda r: {"skipped": r.skipped, "n_skipped": len(r.skipped)}, **run_kwargs,
                    )
                    result.processed += run.processed
                    work_seconds += run.seconds
            if conn is None and todo:
                params = mapper.count_params()
            t_merge = time.perf_counter()
            shardlib.merge(
                out, source, config, plan, dim=int(base["backbone"]["dim"] or mapper.dim),
                attrs={"source": source.location}, overwrite=overwrite,
                finish_attrs=lambda skips: final_attrs(
                    skips, timing(work_seconds + time.perf_counter() - t_merge, result.processed, device, params)),
            )
            result.merge_seconds = time.perf_counter() - t_merge
            elapsed = time.perf_counter() - t_run
            result.images_per_second = result.processed / elapsed if elapsed > 0 and result.processed else 0.0
            result.rows = n - len(result.skipped)
    result.seconds = time.perf_counter() - t0
    return result


def _sharded(cfg: ExtractConfig, out: Path) -> bool:
    """Shards (and a merge) for Ray, for an explicit shard size, or to finish a sharded run already begun."""
    return cfg.engine == "ray" or cfg.shard_rows is not None or shardlib.read_plan(out) is not None


def _finished(out: Path, source: Source, base: dict, cfg: ExtractConfig) -> dict | None:
    """Rows and skips of ``out`` when it is complete with this content definition (no TensorFlow).

    Automatic ``mixed_precision``/``xla`` take the values the file recorded: the same command on the
    same machine would have chosen them.
    """
    try:
        with h5py.File(out, "r") as f:
            if not bool(f.attrs.get(ATTR_COMPLETE, False)):
                return None
            key = _text(f.attrs.get(ATTR_SOURCE_KEY))
            stored = json.loads(_text(f.attrs.get(ATTR_CONFIG)) or "{}")
            skipped = json.loads(_text(f.attrs.get("skipped")) or "[]")
            rows = int(f["features"].shape[0]) if "features" in f else -1
    except (OSError, ValueError, KeyError):
        return None
    mixed = stored.get("mixed_precision") if cfg.mixed_precision is None else cfg.mixed_precision
    mixed = bool(mixed) and not cfg.is_saved_model
    xla = stored.get("xla") if cfg.xla is None else cfg.xla
    config = {**base, "mixed_precision": mixed, "xla": bool(xla)}
    if shardlib.run_key(source, config) != key:
        return None
    return {"rows": rows, "skipped": skipped}


def _text(v):
    return v.decode("utf-8") if isinstance(v, bytes) else v
