"""Benchmark the from-scratch path: is training input-bound? what does ten-crop cost?

Measures, side by side in one run, on a synthetic images store written with the StoreWriter:

* the HDF5 -> tf.data input pipeline alone (block shuffle, random patch crops, augmentation
  layers, prefetch; no model), images/s over a full epoch;
* the MiniGoogLeNet training step at 32x32 on in-memory tensors (no input pipeline), images/s;
* their ratio (target >= 3: the pipeline feeds the model with room to spare);
* ten-crop over single-crop evaluation time on the same rows (target <= 11: 10x the forward work,
  but one forward pass per batch, no per-image calls);
* precise BN: images/s of the BatchNorm recomputation pass over the training step's (its cost
  relative to training on as many images);
* distribution: with the CPU split into ``--cpu-devices`` logical devices (a testing aid, the
  devices share the cores), ``model.fit`` images/s of MiniGoogLeNet under ``--strategy one`` and
  ``--strategy mirrored`` (same per-replica batch), honestly: on one CPU mirrored is not faster;
* GPU mode (only when TensorFlow sees a GPU; otherwise reported as not run): MiniGoogLeNet (32 px)
  and DeeperGoogLeNet (64 px) ``model.fit`` images/s with mixed precision + XLA, under the
  strategy ``auto`` picks, and the input pipeline at the same size over that (target >= 3).

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


def bench_fit(model_name, strategy, global_batch, size, classes, steps, *, mixed_precision=False, xla=False):
    """``model.fit`` images/s on one in-memory batch repeated (no input pipeline), under ``strategy``."""
    import keras
    import numpy as np
    import tensorflow as tf

    import scratch_models

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (global_batch, size, size, 3)).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, global_batch)]
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        with strategy.scope():
            model = scratch_models.create_model(model_name, input_shape=(size, size, 3), classes=classes)
            model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "categorical_crossentropy", jit_compile=xla)
    finally:
        keras.config.set_dtype_policy(previous)
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # trace + warm up
    t0 = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * global_batch / (time.perf_counter() - t0), model


def bench_precise_bn(model, reader, batch, size, images):
    from featx.preprocess.pipeline import batchnorm_dataset
    from featx.train.callbacks.precise_bn import recompute_batchnorm

    ds, steps = batchnorm_dataset(reader, batch, size, images=images)
    recompute_batchnorm(model, ds, 1)  # warm up
    t0 = time.perf_counter()
    n = recompute_batchnorm(model, ds, steps)
    return n * batch / (time.perf_counter() - t0)


def bench_distribution(batch, size, classes, steps, cpu_devices):
    import tensorflow as tf

    from featx.train.strategy import resolve_strategy

    one = resolve_strategy("one")
    mirrored = resolve_strategy("mirrored")
    one_ips, _ = bench_fit("minigooglenet", one.strategy, batch, size, classes, steps)
    mir_ips, _ = bench_fit("minigooglenet", mirrored.strategy, batch * mirrored.replicas, size, classes, steps)
    return {
        "cpu_devices": cpu_devices,
        "logical_cpu_devices": len(tf.config.list_logical_devices("CPU")),
        "model": "minigooglenet", "input_size": size, "batch_size_per_replica": batch,
        "one_device_fit_images_per_second": round(one_ips, 1),
        "mirrored_replicas": mirrored.replicas,
        "mirrored_global_batch_size": batch * mirrored.replicas,
        "mirrored_fit_images_per_second": round(mir_ips, 1),
        "mirrored_over_one_device": round(mir_ips / one_ips, 2),
        "note": "logical CPU devices share the same cores: this checks that the mirrored path runs and what its "
                "overhead is, not a speed-up; on GPUs each replica has its own device",
    }


def bench_gpu(a, classes):
    """MiniGoogLeNet / DeeperGoogLeNet fit images/s with mixed precision + XLA, and the pipeline ratio."""
    import tensorflow as tf

    from featx.data.synthetic import write_synthetic_store
    from featx.preprocess.augment import Augment
    from featx.store import open_store
    from featx.train.strategy import resolve_strategy

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return {"run": False, "why": "not run: TensorFlow sees no GPU on this machine"}
    dist = resolve_strategy("auto")
    out = {"run": True, "gpus": len(gpus), "strategy": dist.name, "replicas": dist.replicas, "models": {}}
    for name, size in (("minigooglenet", 32), ("deepergooglenet", 64)):
        batch = a.batch_size * dist.replicas
        ips, _ = bench_fit(name, dist.strategy, batch, size, classes, a.gpu_steps, mixed_precision=True, xla=True)
        with tempfile.TemporaryDirectory() as tmp:
            p = write_synthetic_store(Path(tmp) / "t.h5", a.rows, size + 4, classes, seed=0)
            with open_store(p) as r:
                pipe = bench_pipeline(r, batch, size, Augment.preset_named("book"))
        out["models"][name] = {
            "input_size": size, "global_batch_size": batch, "mixed_precision": True, "xla": True,
            "fit_images_per_second": round(ips, 1), "pipeline_images_per_second": round(pipe, 1),
            "pipeline_over_train_step": round(pipe / ips, 2), "pipeline_over_train_step_ok": pipe / ips >= 3,
        }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2048, help="rows in the synthetic train store")
    ap.add_argument("--size", type=int, default=36, help="stored image side (cropped to --input-size)")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=10, help="timed training steps")
    ap.add_argument("--eval-rows", type=int, default=256, help="rows for the ten-crop/single-crop timing")
    ap.add_argument("--cpu-devices", type=int, default=2, help="logical CPU devices for the mirrored measurement")
    ap.add_argument("--dist-steps", type=int, default=8, help="timed fit steps per strategy")
    ap.add_argument("--gpu-steps", type=int, default=50, help="timed fit steps per model in GPU mode")
    a = ap.parse_args()

    from featx.train.strategy import configure_cpu_devices

    configure_cpu_devices(a.cpu_devices)  # before TensorFlow initialises its devices
    import tensorflow as tf

    from featx.data.synthetic import write_synthetic_store
    from featx.preprocess.augment import Augment
    from featx.store import open_store

    classes = 10
    with tempfile.TemporaryDirectory() as tmp:
        train_path = write_synthetic_store(Path(tmp) / "train.h5", a.rows, a.size, classes, seed=0)
        eval_path = write_synthetic_store(Path(tmp) / "eval.h5", a.eval_rows, a.size, classes, seed=1, compute_mean=False)
        with open_store(train_path) as r:
            mean = r.mean_rgb
            pipe_aug = bench_pipeline(r, a.batch_size, a.input_size, Augment.preset_named("book"))
            pipe_light = bench_pipeline(r, a.batch_size, a.input_size, Augment.preset_named("light"))
            pipe_plain = bench_pipeline(r, a.batch_size, a.input_size, Augment.preset_named("none"))
        step_ips, model = bench_train_step("minigooglenet", a.batch_size, a.input_size, classes, a.train_steps, mean)
        with open_store(eval_path) as r:
            single_s, ten_s = bench_ten_crop(model, r, a.input_size, a.batch_size)
        with open_store(train_path) as r:
            bn_ips = bench_precise_bn(model, r, a.batch_size, a.input_size, images=a.batch_size * a.train_steps)
    dist = bench_distribution(a.batch_size, a.input_size, classes, a.dist_steps, a.cpu_devices)
    gpu = bench_gpu(a, classes)

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
        "pipeline_augment": "book",
        "pipeline_light_augment_images_per_second": round(pipe_light, 1),
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
        "precise_bn_images_per_second": round(bn_ips, 1),
        "precise_bn_cost_over_training_same_images": round(step_ips / bn_ips, 3),
        "distribution": dist,
        "gpu_mode": gpu,
    }, indent=2))


if __name__ == "__main__":
    main()
