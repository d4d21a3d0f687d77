"""A benchmark that travels: featx on JAX or PyTorch, no TensorFlow needed; prints JSON.

Measured in one run (side by side, same process, same backend):

* ``decode``: the thread loader alone (:func:`featx.data.loader.iter_image_batches`): JPEG files
  -> resized uint8 batches, images/s;
* ``resnet50_model_only``: ResNet50 (``include_top=False, pooling="avg"``, random weights) on a
  batch already on the device, compiled through :func:`featx.runtime.backend.compile_forward`
  (``jax.jit`` / ``torch.compile`` with ``--compile``), mixed precision (``bfloat16`` where the GPU
  computes it natively, else ``float16``; float32 on a CPU), images/s;
* ``resnet50_end_to_end``: JPEG files -> thread loader -> the same compiled function -> float32
  features in host memory (batch ``k+1`` dispatched before batch ``k`` is read back on a GPU),
  images/s, and its ratio to model-only;
* ``finetune_step``: ResNet50 with a new 10-class head, ``model.train_on_batch`` (SGD, every layer
  trainable, compiled), images/s;
* ``minigooglenet_train`` / ``deepergooglenet_train``: featx's scratch networks at their input
  sizes (32 px / 64 px), ``train_on_batch`` images/s.

Weights are random (speed does not depend on them). Run it where TensorFlow is absent, from a copy
of featx's source plus a few small wheels (see README, "Backends")::

    KERAS_BACKEND=jax python scripts/bench_gpu.py            # the full run (< 8 min on one GPU)
    KERAS_BACKEND=jax python scripts/bench_gpu.py --smoke    # seconds, on a CPU: checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make_jpegs(folder: Path, n: int, side: int, seed: int = 0) -> list[str]:
    """``n`` JPEGs (smooth random colour fields plus noise, ``side`` x ``3/4 side``, quality 90)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    h = max(8, side * 3 // 4)
    out = []
    for i in range(n):
        base = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(base).resize((side, h), Image.BILINEAR), np.int16)
        img = np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
        p = folder / f"img_{i:05d}.jpg"
        Image.fromarray(img).save(p, quality=90)
        out.append(str(p))
    return out


def log(msg: str) -> None:
    print(f"[bench_gpu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed(fn, *, seconds: float, min_calls: int = 2) -> tuple[int, float]:
    """Call ``fn`` (which must block until done) until ``seconds`` passed; (calls, seconds)."""
    calls, t0 = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - t0 < seconds:
        fn()
        calls += 1
    return calls, time.perf_counter() - t0


def bench_decode(files, size: int, batch: int, workers: int | None) -> dict:
    from featx.data.loader import iter_image_batches

    t0 = time.perf_counter()
    n = sum(len(i) for i, _, _ in iter_image_batches(files, size=size, batch_size=batch, workers=workers))
    s = time.perf_counter() - t0
    return {"images": n, "seconds": round(s, 3), "images_per_second": round(n / s, 1)}


def bench_resnet(files, args, policy: str, gpus: int) -> tuple[dict, dict]:
    import keras

    from featx.backbones import build_backbone
    from featx.data.loader import iter_image_batches
    from featx.runtime import backend

    bb = build_backbone("resnet50", weights=None, image_size=args.size, mixed_precision=policy)
    fn = bb.feature_function(xla=args.compile)
    x_host = np.random.default_rng(0).integers(0, 256, (args.batch_size, args.size, args.size, 3), dtype=np.uint8)
    x_dev = keras.ops.convert_to_tensor(x_host)
    t0 = time.perf_counter()
    backend.to_numpy(fn(x_dev))
    compile_s = time.perf_counter() - t0
    calls, s = timed(lambda: backend.to_numpy(fn(x_dev)), seconds=args.seconds)
    model_only = {"batch_size": args.batch_size, "calls": calls, "seconds": round(s, 3), "compile_seconds": round(compile_s, 2),
                  "images_per_second": round(calls * args.batch_size / s, 1), "params": int(bb.model.count_params())}

    def end_to_end() -> tuple[int, float]:
        n, pending, t = 0, None, time.perf_counter()
        for idx, imgs, _ in iter_image_batches(files, size=args.size, batch_size=args.batch_size, workers=args.workers):
            if len(imgs) < args.batch_size:  # one compiled shape: pad the last batch
                imgs = np.pad(imgs, [(0, args.batch_size - len(imgs)), (0, 0), (0, 0), (0, 0)])
            job = (fn(imgs), len(idx))
            if gpus and pending is not None:
                n += len(backend.to_numpy(pending[0])[: pending[1]])
                pending = job
            elif gpus:
                pending = job
            else:
                n += len(backend.to_numpy(job[0])[: job[1]])
        if pending is not None:
            n += len(backend.to_numpy(pending[0])[: pending[1]])
        return n, time.perf_counter() - t

    end_to_end()  # warm: file cache, threads
    n, s = end_to_end()
    e2e = {"images": n, "seconds": round(s, 3), "images_per_second": round(n / s, 1)}
    e2e["over_model_only"] = round(e2e["images_per_second"] / model_only["images_per_second"], 3)
    return model_only, e2e


def bench_train_step(model, size: int, classes: int, batch: int, seconds: float, jit) -> dict:
    import keras

    rng = np.random.default_rng(0)
    x = rng.random((batch, size, size, 3), dtype=np.float32) * 255
    y = keras.utils.to_categorical(rng.integers(0, classes, batch), classes)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="categorical_crossentropy", jit_compile=jit)
    t0 = time.perf_counter()
    model.train_on_batch(x, y)
    compile_s = time.perf_counter() - t0
    calls, s = timed(lambda: float(model.train_on_batch(x, y, return_dict=True)["loss"]), seconds=seconds)
    return {"batch_size": batch, "steps": calls, "seconds": round(s, 3), "compile_seconds": round(compile_s, 2),
            "images_per_second": round(calls * batch / s, 1), "params": int(model.count_params())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: a check that the script runs (CPU, seconds)")
    ap.add_argument("--images", type=int, default=2048, help="JPEG files for decode and end to end")
    ap.add_argument("--size", type=int, default=224, help="ResNet50 input side")
    ap.add_argument("--batch-size", type=int, default=256, help="ResNet50 inference batch")
    ap.add_argument("--train-batch", type=int, default=128, help="batch of the training steps")
    ap.add_argument("--seconds", type=float, default=15.0, help="timed seconds per measurement (after compiling)")
    ap.add_argument("--workers", type=int, default=None, help="decode threads (default: one per core)")
    ap.add_argument("--precision", choices=("auto", "bfloat16", "float16", "float32"), default="auto",
                    help="compute type: auto = bfloat16 on GPUs with compute capability 8.0+, float16 on older, float32 on CPU")
    ap.add_argument("--compile", dest="compile", action="store_true", default=None,
                    help="compile (jax.jit / torch.compile / XLA) [default: featx's choice, resolve_accel]")
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="run eagerly (a tf.function on TensorFlow)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.images, args.size, args.batch_size, args.train_batch, args.seconds = 24, 32, 8, 8, 0.5

    import keras

    from featx.runtime import backend
    from featx.runtime.accel import resolve_accel

    backend.set_memory_growth()
    accel = resolve_accel()
    if args.compile is None:
        args.compile = accel.xla  # JAX: jit; TensorFlow / PyTorch: only with a GPU
    policy = accel.policy if args.precision == "auto" else ("float32" if args.precision == "float32" else f"mixed_{args.precision}")
    jit = bool(args.compile)
    out: dict = {
        "bench": "bench_gpu", "smoke": bool(args.smoke), "backend": accel.backend, "keras": keras.__version__,
        "device": accel.device, "gpus": accel.gpus, "policy": policy, "compiled": bool(args.compile),
        "python": platform.python_version(), "tensorflow_imported": None,
        "cpu_count": os.cpu_count(),
    }
    if accel.backend == "jax":
        import jax

        out["jax"] = jax.__version__
        out["devices"] = [str(d) for d in jax.devices()]
    elif accel.backend == "torch":
        import torch

        out["torch"] = torch.__version__
        out["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] or ["cpu"]
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        files = make_jpegs(Path(tmp) / "jpegs", args.images, side=max(args.size + 32, int(args.size * 1.6)))
        log("decode")
        out["decode"] = bench_decode(files, args.size, args.batch_size, args.workers)
        log(f"decode: {out['decode']}; resnet50 model-only and end to end")
        out["resnet50_model_only"], out["resnet50_end_to_end"] = bench_resnet(files, args, policy, accel.gpus)

    import scratch_models

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        base = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg",
                                           input_shape=(args.size, args.size, 3))
        head = keras.layers.Dense(10, activation="softmax", dtype="float32", name="new_head")(base.output)
        ft = keras.Model(base.input, head)
        log("finetune step")
        out["finetune_step"] = bench_train_step(ft, args.size, 10, args.train_batch, args.seconds, jit)
        for name in ("minigooglenet", "deepergooglenet"):
            info = scratch_models.get_model_info(name)
            size = 32 if args.smoke and name == "minigooglenet" else info.input_size
            log(f"{name} train step")
            model = scratch_models.create_model(name, input_shape=(size, size, 3), classes=10)
            out[f"{name}_train"] = bench_train_step(model, size, 10, args.train_batch, args.seconds, jit)
    finally:
        keras.config.set_dtype_policy(previous)
    out["total_seconds"] = round(time.perf_counter() - t_start, 1)
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    std = set(getattr(sys, "stdlib_module_names", ()))
    mods = {m.split(".")[0] for m in list(sys.modules)}
    out["third_party_modules"] = sorted(m for m in mods - std if not m.startswith("_") and m not in ("featx", "scratch_models"))
    print(json.dumps(out, indent=1), flush=True)  # flushed: a library exit hook may skip the buffer
    return out


if __name__ == "__main__":
    main()
