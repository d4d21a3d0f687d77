"""Benchmark the extract engines and the shard merge; prints JSON.

CPU mode (the default without a GPU), on N generated JPEGs, same backbone / images / batch for all:

* ``old_extract``: featx 0.1's ``extract()`` (``featx/extract.py`` + ``featx/backbones/pipeline.py`` of
  commit ``cdab1f4``, loaded from git history into a temporary module; it runs on today's decoder and
  HDF5 writer, which both versions share) vs ``local``: today's local runner. Target: local / old
  >= 0.95 (the refactor costs nothing).
  Measured twice: fresh processes (below), and alternated ``--inproc-repeats`` times inside one
  process (``old_vs_local_in_one_process``: no process start noise; medians and bests).
* ``ray_1`` / ``ray_2``: ``--engine ray`` with 1 and 2 worker actors vs local. On a 2-core CPU there
  is no speed-up to show (the workers share the cores); the figures are the engine's overhead.

Every run is a fresh Python process (``whole_process_seconds``: imports, Ray start, actor start,
backbone build, extraction, merge), and also reports, from inside: ``images_per_second`` (pixels ->
stored features, the ``extract_timing`` attr), ``cold_start_seconds`` (Ray start + actors +
backbones; 0 for local). Runs alternate and repeat ``--repeats`` times; the best is kept (the
machine is shared).

``merge``: a copy merge of S synthetic shards (today's :func:`featx.extract.shards.merge`) vs an
HDF5 virtual dataset over the same shards (creation and a full sequential read of each), and what a
VDS returns when a shard file is missing.

GPU mode (``--mode gpu``, the default when TensorFlow sees a GPU): ResNet50 at 224 px from JPEG
files, batch 256, mixed precision + XLA: ``local`` img/s vs ``model_only`` img/s (the same compiled
function on tensors already on the device; target local >= 0.95 x model-only, >= 3000 img/s on an
H100) and ``ray_1`` (one GPU actor on the same machine; target >= 0.95 x local), cold start apart.

Usage: ``python scripts/bench_scale.py [--mode cpu|gpu] [--n 128] [--image-size 64] [--batch-size 16]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

OLD_COMMIT = "cdab1f4"


def make_jpegs(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> None:
    """``cat.i.jpg`` / ``dog.i.jpg``: smooth random colour fields plus noise, quality 90."""
    import cv2

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    for i in range(n):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{'cat' if i % 2 == 0 else 'dog'}.{i}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def write_old_extract(folder: Path) -> None:
    """featx 0.1's extract + pipeline from git history, as module ``old_extract`` in ``folder``."""
    def show(path: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), "show", f"{OLD_COMMIT}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    pipeline = show("featx/backbones/pipeline.py").replace(
        "from featx.backbones.backbone import gpu_available", "from old_extract import gpu_available")
    extract = show("featx/extract.py")
    extract = extract.replace("from featx.backbones.pipeline import", "from old_pipeline import")
    extract = extract.replace("from featx.backbones.backbone import build_backbone, gpu_available",
                              "from featx.backbones.backbone import build_backbone")
    extract += textwrap.dedent("""

        def gpu_available() -> bool:  # lived in featx.backbones.backbone in 0.1
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
    """)
    (folder / "old_pipeline.py").write_text(pipeline)
    (folder / "old_extract.py").write_text(extract)


RUNNER = textwrap.dedent(
    """
    import json, os, sys, time
    t0 = time.perf_counter()
    args = json.loads(sys.argv[1])
    sys.path.insert(0, args["old_dir"])
    kw = dict(backbone=args["backbone"], weights="none", image_size=args["image_size"], batch_size=args["batch_size"],
              progress=False, overwrite=True, mixed_precision=args.get("mixed_precision"), xla=args.get("xla"))
    ray_init = 0.0
    if args["mode"] == "old":
        from old_extract import extract
    else:
        from featx.extract import extract
        if args["mode"].startswith("ray"):
            import ray
            t = time.perf_counter()
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            ray_init = time.perf_counter() - t
            kw.update(engine="ray", workers=args["workers"], shard_rows=args["shard_rows"])
    t_call = time.perf_counter()
    r = extract(args["src"], args["out"], **kw)
    call = time.perf_counter() - t_call
    import h5py
    with h5py.File(args["out"]) as f:
        rows = int(f["features"].shape[0])
        timing = json.loads(f.attrs["extract_timing"]) if "extract_timing" in f.attrs else None
    print("RESULT " + json.dumps({
        "rows": rows, "processed": r.processed,
        "images_per_second": round(timing["images_per_second"] if timing else r.images_per_second, 2),
        "steady_images_per_second": round(getattr(r, "steady_images_per_second", 0.0), 2),
        "first_batch_seconds": round(getattr(r, "first_batch_seconds", 0.0), 2),
        "extract_call_seconds": round(call, 2),
        "cold_start_seconds": round(ray_init + getattr(r, "start_seconds", 0.0), 2),
        "ray_init_seconds": round(ray_init, 2), "actor_start_seconds": round(getattr(r, "start_seconds", 0.0), 2),
        "merge_seconds": round(getattr(r, "merge_seconds", 0.0), 3),
        "mixed_precision": r.mixed_precision, "xla": r.xla,
        "in_process_seconds": round(time.perf_counter() - t0, 2),
    }))
    """
)


INPROC = textwrap.dedent(
    """
    import json, sys, time
    args = json.loads(sys.argv[1])
    sys.path.insert(0, args["old_dir"])
    from old_extract import extract as old
    from featx.extract import extract as new
    kw = dict(backbone=args["backbone"], weights="none", image_size=args["image_size"], batch_size=args["batch_size"],
              progress=False, overwrite=True)
    runs = {"old_extract": [], "local": []}
    for i in range(args["repeats"]):
        for name, fn in (("old_extract", old), ("local", new)) if i % 2 == 0 else (("local", new), ("old_extract", old)):
            r = fn(args["src"], args["out"] + name + ".h5", **kw)
            runs[name].append({"images_per_second": round(r.images_per_second, 2),
                               "steady_images_per_second": round(r.steady_images_per_second, 2),
                               "first_batch_seconds": round(r.first_batch_seconds, 2)})
    print("RESULT " + json.dumps(runs))
    """
)


def run_inproc(src: Path, out: Path, old_dir: Path, args) -> dict:
    """Old extract and the local runner alternated in one process (no process start noise)."""
    spec = {"src": str(src), "out": str(out), "old_dir": str(old_dir), "backbone": args.backbone,
            "image_size": args.image_size, "batch_size": args.batch_size, "repeats": args.inproc_repeats}
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", INPROC, json.dumps(spec)], env=env, capture_output=True, text=True,
                          timeout=1800)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"in-process comparison failed (rc {proc.returncode}): {proc.stderr[-3000:]}")
    runs = json.loads(line[-1][len("RESULT "):])
    print(f"[bench_scale] in-process: {json.dumps(runs)}", file=sys.stderr, flush=True)
    out = {"repeats_each": args.inproc_repeats, "runs": runs}
    for key in ("steady_images_per_second", "images_per_second"):
        a = sorted(r[key] for r in runs["local"])
        b = sorted(r[key] for r in runs["old_extract"])
        out[f"local_over_old_{key}_median"] = round(a[len(a) // 2] / b[len(b) // 2], 3) if b[len(b) // 2] else None
        out[f"local_over_old_{key}_best"] = round(a[-1] / b[-1], 3) if b[-1] else None
    return out


def run_mode(mode: str, src: Path, out: Path, old_dir: Path, args, **extra) -> dict:
    spec = {"mode": mode, "src": str(src), "out": str(out), "old_dir": str(old_dir), "backbone": args.backbone,
            "image_size": args.image_size, "batch_size": args.batch_size, "workers": extra.get("workers", 1),
            "shard_rows": extra.get("shard_rows"), "mixed_precision": extra.get("mixed_precision"),
            "xla": extra.get("xla")}
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "RAY_DISABLE_IMPORT_WARNING": "1"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(spec)], env=env, capture_output=True, text=True,
                          timeout=1800)
    wall = time.perf_counter() - t
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"{mode} failed (rc {proc.returncode}): {proc.stderr[-3000:]}")
    res = json.loads(line[-1][len("RESULT "):])
    res["whole_process_seconds"] = round(wall, 2)
    print(f"[bench_scale] {mode}: {json.dumps(res)}", file=sys.stderr, flush=True)
    return res


def bench_merge(tmp: Path, shards: int, rows: int, dim: int) -> dict:
    """Copy merge (featx) vs an HDF5 virtual dataset over the same shard files."""
    import h5py

    from featx.extract import shards as shardlib
    from featx.extract.sources import Source, plan_shards
    from featx.store import StoreWriter

    n = shards * rows
    out = tmp / "merged.h5"
    source = Source("folder", str(tmp), [f"img_{i:07d}.jpg" for i in range(n)], [i % 10 for i in range(n)],
                    [f"c{k}" for k in range(10)])
    config = {"bench": "merge", "backbone": {"name": "synthetic", "dim": dim}}
    plan = plan_shards(n, rows)
    shardlib.prepare(out, shardlib.run_key(source, config), n, rows, default=rows, overwrite=True)
    rng = np.random.default_rng(0)
    for s in plan:
        t = source.rows(s.start, s.stop)
        w = StoreWriter(shardlib.shard_path(out, s), kind="features", row_shape=(dim,), dtype=np.float32,
                        paths=t.paths, labels=t.labels, label_names=t.label_names,
                        config=shardlib.shard_config(config, s))
        with w:
            w.add_batch(0, rng.standard_normal((s.rows, dim), dtype=np.float32))
            w.finish(attrs={"skipped": [], "n_skipped": 0})
    nbytes = n * dim * 4

    vds = tmp / "vds.h5"
    t = time.perf_counter()
    layout = h5py.VirtualLayout(shape=(n, dim), dtype=np.float32)
    for s in plan:
        layout[s.start : s.stop] = h5py.VirtualSource(str(shardlib.shard_path(out, s)), "features", shape=(s.rows, dim))
    with h5py.File(vds, "w") as f:
        f.create_virtual_dataset("features", layout, fillvalue=0.0)
    vds_create = time.perf_counter() - t
    t = time.perf_counter()
    with h5py.File(vds, "r") as f:
        total = sum(float(f["features"][a : a + 16384].sum()) for a in range(0, n, 16384))
    vds_read = time.perf_counter() - t

    t = time.perf_counter()
    shardlib.merge(out, source, config, plan, dim=dim, attrs={}, finish_attrs=lambda skips: {"skipped": skips})
    copy_seconds = time.perf_counter() - t
    t = time.perf_counter()
    with h5py.File(out, "r") as f:
        total2 = sum(float(f["features"][a : a + 16384].sum()) for a in range(0, n, 16384))
    copy_read = time.perf_counter() - t
    assert abs(total - total2) < 1e-3 * max(1.0, abs(total)), (total, total2)

    # the merge removed the shard folder: the VDS now points at missing files
    with h5py.File(vds, "r") as f:
        x = f["features"][: min(n, 1024)]
    missing = {"error": False, "all_fill_values": bool((x == 0).all())}
    mib = nbytes / 2**20
    return {
        "shards": shards, "rows_per_shard": rows, "dim": dim, "features_mib": round(mib, 1),
        "copy_merge_seconds": round(copy_seconds, 3), "copy_merge_mib_per_second": round(mib / copy_seconds, 1),
        "copy_read_all_seconds": round(copy_read, 3),
        "vds_create_seconds": round(vds_create, 4), "vds_read_all_seconds": round(vds_read, 3),
        "vds_after_shards_removed": missing,
        "choice": "copy merge: one self-contained file, shards removed, readers unchanged; a VDS keeps every "
                  "shard file forever and reads a missing one as fill values without an error",
    }


def model_only(args) -> dict:
    """The compiled forward pass alone on a device-resident batch (the pipeline's ceiling)."""
    import tensorflow as tf

    from featx.extract import FeatureMapper
    from featx.extract.config import ExtractConfig
    from featx.runtime.accel import resolve_accel

    cfg = ExtractConfig(backbone=args.backbone, weights="none", image_size=args.image_size, batch_size=args.batch_size)
    accel = resolve_accel()
    settings, _ = cfg.backbone_settings("folder")
    mapper = FeatureMapper(settings, mixed_precision=accel.mixed_precision, xla=accel.xla, batch_size=args.batch_size)
    x = tf.constant(np.random.default_rng(0).integers(0, 256, (args.batch_size, args.image_size, args.image_size, 3),
                                                      dtype=np.uint8))
    mapper.collect(mapper.dispatch(x))  # trace + compile
    batches = max(3, -(-args.n // args.batch_size))
    t = time.perf_counter()
    pending = None
    for _ in range(batches):
        job = mapper.dispatch(x)
        if pending is not None:
            mapper.collect(pending)
        pending = job
    mapper.collect(pending)
    sec = time.perf_counter() - t
    return {"images": batches * args.batch_size, "images_per_second": round(batches * args.batch_size / sec, 1),
            "mixed_precision": accel.mixed_precision, "xla": accel.xla}


def main(argv=None) -> dict:
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["cpu", "gpu"], default="gpu" if gpus else "cpu")
    ap.add_argument("--n", type=int, default=None, help="JPEGs [cpu: 128, gpu: 8192]")
    ap.add_argument("--image-size", type=int, default=None, help="model input side [cpu: 64, gpu: 224]")
    ap.add_argument("--batch-size", type=int, default=None, help="[cpu: 16, gpu: 256]")
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--repeats", type=int, default=1, help="fresh-process runs per mode (best kept)")
    ap.add_argument("--inproc-repeats", type=int, default=4, help="old vs local alternations in one process")
    ap.add_argument("--merge-shards", type=int, default=8)
    ap.add_argument("--merge-rows", type=int, default=2048)
    args = ap.parse_args(argv)
    gpu_mode = args.mode == "gpu"
    args.n = args.n or (8192 if gpu_mode else 128)
    args.image_size = args.image_size or (224 if gpu_mode else 64)
    args.batch_size = args.batch_size or (256 if gpu_mode else 16)
    source_size = (500, 375) if gpu_mode else (160, 120)

    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "jpegs"
        make_jpegs(src, args.n, source_size)
        write_old_extract(tmp)
        shard_rows = -(-args.n // 4)
        if gpu_mode:
            modes = {"local": {}, "ray_1": {"workers": 1, "shard_rows": shard_rows}}
        else:
            modes = {"old_extract": {}, "local": {}, "ray_1": {"workers": 1, "shard_rows": shard_rows},
                     "ray_2": {"workers": 2, "shard_rows": shard_rows}}
        for _ in range(args.repeats):
            for name, extra in modes.items():
                mode = "old" if name == "old_extract" else ("ray" if name.startswith("ray") else "local")
                runs.setdefault(name, []).append(run_mode(mode, src, tmp / f"{name}.h5", tmp, args, **extra))
        inproc = None if gpu_mode else run_inproc(src, tmp / "inproc_", tmp, args)
        merge = bench_merge(tmp, args.merge_shards, args.merge_rows, 2048)
        only = model_only(args) if gpu_mode else None

    def best(name, key="images_per_second"):
        return max(runs[name], key=lambda r: r[key])

    def fastest(name):
        return min(r["whole_process_seconds"] for r in runs[name])

    def ratio(a, b):
        return round(a / b, 3) if b else None

    local = best("local", "steady_images_per_second")
    ratios = {}
    if "old_extract" in runs:
        old = best("old_extract", "steady_images_per_second")
        ratios["local_over_old_extract_steady"] = ratio(local["steady_images_per_second"], old["steady_images_per_second"])
        ratios["local_over_old_extract_images_per_second"] = ratio(
            best("local")["images_per_second"], best("old_extract")["images_per_second"])
        ratios["local_over_old_extract_whole_process"] = ratio(fastest("old_extract"), fastest("local"))
    for name in runs:
        if name.startswith("ray"):
            ray_ips = best(name)["images_per_second"]
            ratios[f"{name}_over_local_steady"] = ratio(ray_ips, local["steady_images_per_second"])
            ratios[f"{name}_over_local_images_per_second"] = ratio(ray_ips, best("local")["images_per_second"])
            ratios[f"{name}_over_local_whole_process"] = ratio(fastest("local"), fastest(name))
    if only:
        ratios["local_steady_over_model_only"] = ratio(local["steady_images_per_second"], only["images_per_second"])
    report = {
        "bench": "featx extract engines: old extract (cdab1f4) vs local runner vs Ray actors; shard merge: copy vs VDS",
        "mode": args.mode,
        "backbone": f"{args.backbone} (weights=none: random init, no network here; speed does not depend on weights)",
        "images": {"n": args.n, "source": f"{source_size[0]}x{source_size[1]} JPEG q90", "image_size": args.image_size,
                   "batch_size": args.batch_size, "ray_shard_rows": shard_rows},
        "machine": {"cpus": os.cpu_count(), "gpus": gpus, "load_avg_1min_at_end": round(os.getloadavg()[0], 2)},
        "definitions": {
            "images_per_second": "pixels -> stored features (extract_timing attr): local from its first batch "
                                 "(tf.data fill + tracing included); Ray from shards handed out to merged (actors "
                                 "already warm: tracing is in cold_start)",
            "steady_images_per_second": "local and old extract: after the first batch (the rate a long run settles at)",
            "whole_process_seconds": "fresh python process: imports, Ray start, actors, backbone build, extract, merge",
            "cold_start_seconds": "Ray start + actor start + backbone build and tracing in the actors (not in images_per_second)",
            "ratios": "above 1 = faster than the reference; whole_process ratios compare wall times (reference / mode)",
        },
        "best": {name: best(name) for name in runs},
        "model_only": only,
        "old_vs_local_in_one_process": inproc,
        "ratios": ratios,
        "targets": {"local_over_old_extract": ">= 0.95", "gpu_local_over_model_only": ">= 0.95 (GPU mode)",
                    "gpu_ray_1_over_local": ">= 0.95 (GPU mode)"},
        "merge": merge,
        "all_runs": runs,
    }
    if not gpu_mode:
        report["gpu_mode"] = "not run: no GPU on this machine (run `python scripts/bench_scale.py --mode gpu` where one is)"
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
