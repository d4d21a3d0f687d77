"""Benchmark the from-scratch path: is training input-bound? what does ten-crop cost?

Measures, side by side in one run, on a synthetic images store written with the StoreWriter:

* the HDF5 -> tf.data input pipeline alone (block shuffle, random patch crops, augmentation
  layers, prefetch; no model), images/s over a full epoch;
* the MiniGoogLeNet training step at 32x32 on in-memory tensors (no input pipeline), images/s;
* their ratio (target >= 3: the pipeline feeds the model with room to spare);
* ten-crop over single-crop evaluation time on the same rows (target <= 11: 10x the forward work,
  but one forward pass per batch, no per-image calls).

    python scripts/bench_train.py            # prints JSON
    python scripts/bench_train.py --rows 4096 --train-steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def bench_pipeline(reader, batch, size, augment, epochs=2):
    from featx.preprocess.pipeline import train_dataset

    ds = train_dataset(reader, batch, size, augment=augment, seed=0)
    rates = []
    for _ in range(epochs):  # the first epoch warms up (tracing, file cache); the best epoch counts
        n, t0 = 0, time.perf_counter()
        for x, _ in ds:
            n += int(x.shape[0])
        rates.append(n / (time.perf_counter() - t0))
    return max(rates)


def bench_train_step(model_name, batch, size, classes, steps, mean):
    import keras
    import numpy as np

    import scratch_models
    from featx.preprocess.mean import with_mean_subtraction

    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    y = keras.ops.convert_to_tensor(rng.integers(0, classes, batch))
    model = with_mean_subtraction(scratch_models.create_model(model_name, input_shape=(size, size, 3), classes=classes), mean)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)
    for _ in range(2):  # trace + warm up
        model.train_on_batch(x, y)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch / (time.perf_counter() - t0), model


def bench_ten_crop(model, reader, size, batch):
    from featx.evaluate import predict_images

    _, single = predict_images(model, reader, size, ten_crop=False, batch_size=batch, progress=False)
    _, ten = predict_images(model, reader, size, ten_crop=True, batch_size=batch, progress=False)
    return single, ten


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2048, help="rows in the synthetic train store")
    ap.add_argument("--size", type=int, default=36, help="stored image side (cropped to --input-size)")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=10, help="timed training steps")
    ap.add_argument("--eval-rows", type=int, default=256, help="rows for the ten-crop/single-crop timing")
    a = ap.parse_args()

    import tensorflow as tf

    from featx.preprocess.augment import Augment
    from featx.store import open_store
    from featx.synthetic import write_synthetic_store

    classes = 10
    with tempfile.TemporaryDirectory() as tmp:
        train_path = write_synthetic_store(Path(tmp) / "train.h5", a.rows, a.size, classes, seed=0)
        eval_path = write_synthetic_store(Path(tmp) / "eval.h5", a.eval_rows, a.size, classes, seed=1, compute_mean=False)
        with open_store(train_path) as r:
            mean = r.mean_rgb
            pipe_aug = bench_pipeline(r, a.batch_size, a.input_size, Augment())
            pipe_plain = bench_pipeline(r, a.batch_size, a.input_size, Augment(enabled=False))
        step_ips, model = bench_train_step("minigooglenet", a.batch_size, a.input_size, classes, a.train_steps, mean)
        with open_store(eval_path) as r:
            single_s, ten_s = bench_ten_crop(model, r, a.input_size, a.batch_size)

    ratio = pipe_aug / step_ips
    ten_ratio = ten_s / single_s
    gpus = tf.config.list_physical_devices("GPU")
    print(json.dumps({
        "device": "gpu" if gpus else "cpu",
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "rows": a.rows, "stored_size": a.size, "input_size": a.input_size, "batch_size": a.batch_size,
        "pipeline_images_per_second": round(pipe_aug, 1),
        "pipeline_no_augment_images_per_second": round(pipe_plain, 1),
        "train_step_images_per_second": round(step_ips, 1),
        "pipeline_over_train_step": round(ratio, 2),
        "pipeline_over_train_step_target": ">= 3",
        "pipeline_over_train_step_ok": ratio >= 3,
        "eval_rows": a.eval_rows,
        "single_crop_seconds": round(single_s, 3),
        "ten_crop_seconds": round(ten_s, 3),
        "ten_crop_over_single_crop": round(ten_ratio, 2),
        "ten_crop_over_single_crop_target": "<= 11",
        "ten_crop_over_single_crop_ok": ten_ratio <= 11,
    }, indent=2))


if __name__ == "__main__":
    main()
