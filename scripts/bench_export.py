"""Benchmark ``featx export``: the exported model against ``featx predict``'s forward path; prints JSON.

A classifier is made here (generated JPEGs of ``--classes`` colours -> ``featx extract`` with a
random-init ``--backbone`` -> ``featx fit``), exported to SavedModel and ONNX (and TFLite with
``--tflite``), then on the same uint8 batch of ``--n`` images, side by side in one process:

* ``featx_predict_path``: what ``featx predict`` runs per batch once the images are decoded: the
  backbone's compiled feature function (:meth:`Backbone.feature_function`), then the classifier's
  ``predict_proba`` (``full_proba``);
* ``savedmodel``: the SavedModel's ``serving_default`` signature (``tf.saved_model.load``);
* ``onnx``: ``model.onnx`` in ``onnxruntime`` (CPU execution provider);
* ``tflite``: ``model.tflite`` in LiteRT's interpreter (only with ``--tflite``).

The export's parity check runs on the generated JPEGs (larger than the input, so they are
resized): ``predict_bytes_on_the_jpeg_files`` is the SavedModel's ``predict_bytes`` on the files'
own bytes against featx's decode + forward path (top-1 agreement, max abs difference).

Reported: images/s at ``--batch-size`` (best of ``--repeats`` alternating passes: the machine is
shared), single-image latency p50/p99 over ``--latency-calls`` calls, the export's wall time per
format, file sizes, and the parity the export measured. Weights are random (no network here): speed
does not depend on them. Decode is not included (the same ``tf.data`` decode feeds every path).

Usage: ``python scripts/bench_export.py [--backbone mobilenetv2] [--image-size 96] [--n 128]``
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


def make_images(folder: Path, classes: int, per_class: int, size: int, seed: int = 0) -> None:
    """JPEGs about 2.3 x 1.7 the input size (so decode + resize is exercised): a class colour, smooth
    random fields and noise."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = int(size * 1.7), int(size * 2.3)
    for c in range(classes):
        (folder / f"class_{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            field = cv2.resize(rng.integers(0, 90, (5, 7, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
            img = np.clip(field.astype(np.int16) + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
            img[..., c % 3] = np.clip(img[..., c % 3].astype(np.int16) + 140, 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"class_{c}" / f"{i}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])


def rate(fn, images: np.ndarray, batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(images), batch):
        fn(images[i:i + batch])
    return len(images) / (time.perf_counter() - t0)


def latency(fn, images: np.ndarray, calls: int) -> dict:
    times = []
    for i in range(calls):
        x = images[i % len(images)][None]
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="mobilenetv2")
    ap.add_argument("--image-size", type=int, default=96)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--n", type=int, default=128, help="images in the timed batch")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--latency-calls", type=int, default=50)
    ap.add_argument("--tflite", action="store_true", help="also export and time TFLite")
    args = ap.parse_args()

    import featx
    from featx.backbones import backbone_from_settings
    from featx.export import export_model
    from featx.export.formats import Runner
    from featx.fit import full_proba, load_classifier
    from featx.runtime.accel import resolve_accel

    accel = resolve_accel()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_images(root / "images", args.classes, args.per_class, args.image_size)
        featx.extract_features(str(root / "images"), str(root / "f.h5"), backbone=args.backbone, weights="none",
                               image_size=args.image_size, progress=False)
        featx.fit_features(str(root / "f.h5"), str(root / "clf.pkl"), test_size=0.25, jobs=1)
        formats = "savedmodel,onnx" + (",tflite" if args.tflite else "")
        t0 = time.perf_counter()
        res = export_model(root / "clf.pkl", root / "served", formats=formats, check_images=[root / "images"],
                           progress=False)
        export_seconds = time.perf_counter() - t0

        est, manifest = load_classifier(root / "clf.pkl")
        names = manifest["label_names"]
        backbone = backbone_from_settings(manifest["backbone"], mixed_precision=accel.mixed_precision)
        feature_fn = backbone.feature_function(xla=accel.xla)

        def featx_path(x):
            return full_proba(est, np.asarray(feature_fn(x)), len(names))

        paths = {"featx_predict_path": featx_path}
        for fmt in res.formats:
            paths[fmt] = Runner(fmt, root / "served" / res.record["formats"][fmt]["path"], batch_size=args.batch_size)
        images = np.random.default_rng(1).integers(0, 256, (args.n, args.image_size, args.image_size, 3), dtype=np.uint8)
        for fn in paths.values():  # warm up: trace / compile / allocate
            fn(images[: args.batch_size])
            fn(images[:1])
        best = {k: 0.0 for k in paths}
        for _ in range(args.repeats):
            for name, fn in paths.items():
                best[name] = max(best[name], rate(fn, images, args.batch_size))
        lat = {name: latency(fn, images, args.latency_calls) for name, fn in paths.items()}
        ref = featx_path(images)
        agree = {name: float((fn(images).argmax(1) == ref.argmax(1)).mean()) for name, fn in paths.items() if name != "featx_predict_path"}
        rec = res.record
        out = {
            "backbone": args.backbone, "image_size": args.image_size, "batch_size": args.batch_size, "n": args.n,
            "device": accel.device, "precision": accel.describe(), "classes": len(names),
            "images_per_second": {k: round(v, 1) for k, v in best.items()},
            "ratio_to_featx_predict_path": {k: round(v / best["featx_predict_path"], 3) for k, v in best.items()
                                           if k != "featx_predict_path"},
            "single_image_latency": lat,
            "top1_agreement_with_featx_path": agree,
            "export_seconds": {"total": round(export_seconds, 2), **rec["seconds"]},
            "size_bytes": {k: v["size_bytes"] for k, v in rec["formats"].items()},
            "parity_max_abs_diff": {k: rec["parity"][k]["max_abs_diff"] for k in [*res.formats, "predict_bytes"]
                                    if k in rec["parity"]},
            "predict_bytes_on_the_jpeg_files": rec["parity"].get("predict_bytes", {}).get("check_image_files"),
            "parity_sample": rec["parity"]["sample"],
            "versions": {k: rec["versions"][k] for k in ("tensorflow", "keras", "onnxruntime", "tf2onnx") if k in rec["versions"]},
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
