"""Benchmark ``featx extract`` against the model alone and against the book's loop; prints JSON.

On N generated JPEGs (about 500x375, like Kaggle Dogs vs Cats), same backbone for all:

* ``featx_extract``: :func:`featx.extract.extract` end to end (discovery, ``tf.data`` decode +
  resize, compiled forward pass, HDF5 writes), with the default ``tf.data`` decoder and with the
  process-pool decoder;
* ``model_only``: the same model and batch size on preprocessed tensors already in memory
  (``model(x, training=False)`` in a ``tf.function``): the ceiling for the pipeline;
* ``book_loop``: per image ``keras.utils.load_img`` + ``img_to_array`` + ``preprocess_input``,
  then ``model.predict`` per batch of 16 (Deep Learning for Computer Vision, Practitioner Bundle).

Ratios: pipeline / model-only (steady-state rates; target >= 0.9) and featx / book loop (whole
loops, first-call tracing included on both sides; target >= 1.4 on a 2-core CPU). Each measurement
is repeated ``--repeats`` times, alternating, and the best run is kept: the machine is shared.
Weights are random (``weights=None``): no network here, and speed does not depend on them.

Usage: ``python scripts/bench_extract.py [--n 128] [--batch-size 32] [--image-size 224]``

``--decoders``: instead, ``featx extract`` end to end with ``--decoder tfdata`` vs ``--decoder
threads`` on TensorFlow, side by side (``--repeats`` rounds, the order alternating each round), on
two image sets: JPEGs with a 256 px short side (341x256, q90) and 500x375 PNGs; a fast backbone
(``--backbone mobilenetv2`` by default) so decoding is a visible part of the time. Reports every
run, the median images/s per decoder and set, and threads / tfdata. This measurement chose the
decoder ``auto`` picks on TensorFlow (README "Backends").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BOOK_BATCH = 16


def make_jpegs(folder: Path, n: int, seed: int = 0, *, size=(500, 375), ext: str = "jpg") -> list[Path]:
    """``cat.i.jpg`` / ``dog.i.jpg``: smooth random colour fields plus noise, 500x375 (w x h),
    quality 90 (``ext="png"``: PNG files, default compression)."""
    import cv2

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = cv2.resize(small, size, interpolation=cv2.INTER_CUBIC).astype(np.int16)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        p = folder / f"{'cat' if i % 2 == 0 else 'dog'}.{i}.{ext}"
        cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == "jpg" else [])
        paths.append(p)
    return paths


def run_featx(src: Path, out: Path, args, decoder: str, backbone: str = "resnet50") -> dict:
    from featx.extract import extract

    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    r = extract(src, out, backbone=backbone, weights="none", image_size=args.image_size,
                batch_size=args.batch_size, decoder=decoder, progress=False, overwrite=True)
    wall = time.perf_counter() - t0
    return {
        "decoder": decoder,
        "images": r.processed,
        "images_per_second": round(r.images_per_second, 2),
        "steady_images_per_second": round(r.steady_images_per_second, 2),
        "first_batch_seconds": round(r.first_batch_seconds, 2),
        "wall_seconds_with_model_build": round(wall, 2),
        "mixed_precision": r.mixed_precision,
        "xla": r.xla,
    }


def run_model_only(model, n: int, args) -> dict:
    import tensorflow as tf
    from keras.applications.resnet50 import preprocess_input

    rng = np.random.default_rng(0)
    x = preprocess_input(rng.uniform(0, 255, (args.batch_size, args.image_size, args.image_size, 3)).astype("float32"))
    x = tf.constant(x)
    fn = tf.function(lambda t: model(t, training=False))
    np.asarray(fn(x))  # trace + warm-up
    batches = max(1, -(-n // args.batch_size))
    t0 = time.perf_counter()
    for _ in range(batches):
        np.asarray(fn(x))
    sec = time.perf_counter() - t0
    return {"images": batches * args.batch_size, "images_per_second": round(batches * args.batch_size / sec, 2)}


def run_book_loop(model, paths: list[Path], args) -> dict:
    """The book's extract_features.py loop (pooled output, so only the loop differs from featx)."""
    from keras.applications import imagenet_utils
    from keras.utils import img_to_array, load_img

    size = (args.image_size, args.image_size)
    model.make_predict_function(force=True)  # the first predict traces anew, as in a fresh script
    t0 = time.perf_counter()
    feats = []
    for i in range(0, len(paths), BOOK_BATCH):
        batch = []
        for p in paths[i : i + BOOK_BATCH]:
            image = load_img(p, target_size=size)
            image = img_to_array(image)
            image = np.expand_dims(image, axis=0)
            image = imagenet_utils.preprocess_input(image)
            batch.append(image)
        batch = np.vstack(batch)
        feats.append(model.predict(batch, batch_size=BOOK_BATCH, verbose=0))
    sec = time.perf_counter() - t0
    n = sum(len(f) for f in feats)
    return {"images": n, "batch_size": BOOK_BATCH, "images_per_second": round(n / sec, 2)}


def decoders(args) -> dict:
    """``--decoder tfdata`` vs ``threads`` on TensorFlow, two image sets, side by side."""
    import statistics

    import keras

    sets = {"jpeg_341x256": ((341, 256), "jpg"), "png_500x375": ((500, 375), "png")}
    runs: dict[str, dict[str, list[dict]]] = {s: {"tfdata": [], "threads": []} for s in sets}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for name, (size, ext) in sets.items():
            folders[name] = Path(tmp) / name
            make_jpegs(folders[name], args.n, size=size, ext=ext)
        run_featx(folders["jpeg_341x256"], Path(tmp) / "warm.h5", args, "threads", args.backbone)  # warm caches
        for r in range(args.repeats):
            for name in sets:
                order = ("tfdata", "threads") if r % 2 == 0 else ("threads", "tfdata")
                for dec in order:
                    res = run_featx(folders[name], Path(tmp) / "f.h5", args, dec, args.backbone)
                    res["load_avg_1min"] = round(os.getloadavg()[0], 2)
                    runs[name][dec].append(res)
                print(f"[bench_extract] round {r + 1} {name}: "
                      f"{json.dumps({d: v[-1]['images_per_second'] for d, v in runs[name].items()})}",
                      file=sys.stderr, flush=True)

    def median(name, dec, key):
        return round(statistics.median(x[key] for x in runs[name][dec]), 2)

    summary = {}
    for name in sets:
        m = {dec: {k: median(name, dec, k) for k in ("images_per_second", "steady_images_per_second")}
             for dec in ("tfdata", "threads")}
        m["threads_over_tfdata"] = {k: round(m["threads"][k] / m["tfdata"][k], 3) if m["tfdata"][k] else None
                                    for k in ("images_per_second", "steady_images_per_second")}
        summary[name] = m
    report = {
        "bench": "featx extract --decoder tfdata vs threads on TensorFlow (decode + resize + forward pass + HDF5)",
        "backend": keras.backend.backend(),
        "backbone": f"{args.backbone} (random weights), image_size {args.image_size}, batch {args.batch_size}",
        "images_per_set": args.n,
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count()},
        "median": summary,
        "all_runs": runs,
    }
    print(json.dumps(report, indent=2))
    return report


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=128, help="number of JPEGs")
    ap.add_argument("--batch-size", type=int, default=32, help="featx and model-only batch size")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs per measurement; the best is kept")
    ap.add_argument("--decoders", action="store_true", help="tfdata vs threads decoders side by side (see above)")
    ap.add_argument("--backbone", default="mobilenetv2", help="the backbone of --decoders runs")
    args = ap.parse_args(argv)
    if args.decoders:
        return decoders(args)

    import tensorflow as tf

    from featx.backbones import build_backbone

    runs: dict[str, list[dict]] = {"featx_tfdata": [], "featx_pool": [], "model_only": [], "book_loop": []}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "jpegs"
        paths = make_jpegs(src, args.n)
        bb = build_backbone("resnet50", weights=None, image_size=args.image_size)
        for _ in range(args.repeats):
            runs["featx_tfdata"].append(run_featx(src, Path(tmp) / "f.h5", args, "tfdata"))
            runs["model_only"].append(run_model_only(bb.model, args.n, args))
            runs["book_loop"].append(run_book_loop(bb.model, paths, args))
            runs["featx_pool"].append(run_featx(src, Path(tmp) / "g.h5", args, "pool"))
            print(f"[bench_extract] round done: {json.dumps({k: v[-1]['images_per_second'] for k, v in runs.items()})}",
                  file=sys.stderr, flush=True)

    def best(name, key="images_per_second"):
        return max(runs[name], key=lambda r: r[key])

    featx, pool = best("featx_tfdata", "steady_images_per_second"), best("featx_pool", "steady_images_per_second")
    featx_loop = max(r["images_per_second"] for r in runs["featx_tfdata"])
    model_only, book = best("model_only"), best("book_loop")
    def ratio(a, b):
        return round(a / b, 3) if b else None

    report = {
        "bench": "featx extract vs model-only vs the book's load_img + model.predict loop",
        "backbone": "resnet50 (keras.applications, include_top=False, pooling='avg')",
        "weights": "none (random init: no network on this machine; speed does not depend on weights)",
        "images": {"n": args.n, "source_size": "500x375 JPEG q90", "image_size": args.image_size},
        "batch_size": {"featx": args.batch_size, "model_only": args.batch_size, "book_loop": BOOK_BATCH},
        "machine": {"cpus": os.cpu_count(), "gpu": bool(tf.config.list_physical_devices("GPU")),
                    "load_avg_1min_at_end": round(os.getloadavg()[0], 2)},
        "featx_extract": featx,
        "featx_extract_pool_decoder": pool,
        "model_only": model_only,
        "book_loop": book,
        "ratios": {
            "pipeline_over_model_only": ratio(featx["steady_images_per_second"], model_only["images_per_second"]),
            "featx_over_book_loop": ratio(featx_loop, book["images_per_second"]),
            "pool_decoder_over_tfdata_decoder": ratio(pool["steady_images_per_second"], featx["steady_images_per_second"]),
        },
        "targets": {"pipeline_over_model_only": ">= 0.9", "featx_over_book_loop": ">= 1.4 on a 2-core CPU"},
        "all_runs": runs,
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
