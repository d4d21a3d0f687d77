"""Benchmark every featx backbone: parameters and images/s of the compiled forward pass.

For each registered backbone (``featx models``) at its default input size, with random weights
(``--weights none``: the speed of a network does not depend on its weights), and for the curated
``hub:`` presets: built here from their published hyperparameters with KerasHub's own classes
(DINOv2, DINOv3, CLIP and SigLIP vision towers) and random weights, since the presets cannot be
downloaded on a machine without network (``"source": "architecture"`` in the output). Each model
runs through featx's own ``Backbone.feature_function`` (preprocessing + forward pass, compiled):
one warm-up batch (trace and compile), then timed batches of ``--batch`` random uint8 images
until ``--seconds`` have passed (at least one, at most ``--max-batches``).

Prints one JSON object. On a GPU, mixed precision and XLA are on (``featx.runtime.accel``).

    python scripts/bench_backbones.py                      # everything, batch 32
    python scripts/bench_backbones.py --only resnet50,hub:dinov2_small --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def hub_architecture(name: str, mixed):
    """The vision tower of a curated hub: preset, from its published hyperparameters (random weights)."""
    import keras
    import keras_hub as kh
    from keras_hub.src.models.clip.clip_vision_encoder import CLIPVisionEncoder
    from keras_hub.src.models.siglip.siglip_vision_encoder import SigLIPVisionEncoder

    from featx.backbones.base import Backbone
    from featx.backbones.hub import ScaleOffset

    dtype = ("mixed_float16" if mixed is True else mixed) if mixed else None
    mean_std = lambda m, s: ([1 / 255 / x for x in s], [-a / x for a, x in zip(m, s)])  # noqa: E731
    imagenet = mean_std((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if name.startswith("dinov2_"):
        hidden, heads = {"dinov2_small": (384, 6), "dinov2_base": (768, 12)}[name]
        size = 518
        bb = kh.models.DINOV2Backbone(patch_size=14, num_layers=12, hidden_dim=hidden, num_heads=heads,
                                      intermediate_dim=4 * hidden, image_shape=(size, size, 3),
                                      position_embedding_shape=(size, size, 3), dtype=dtype)
        x = keras.Input((size, size, 3))
        model, (scale, offset) = keras.Model(x, bb({"images": x})[:, 0, :]), imagenet
    elif name == "dinov3_vit_small_lvd1689m":
        size = 224
        bb = kh.models.DINOV3Backbone(patch_size=16, num_layers=12, hidden_dim=384, num_heads=6, intermediate_dim=1536,
                                      num_register_tokens=4, image_shape=(size, size, 3), dtype=dtype)
        x = keras.Input((size, size, 3))
        model, (scale, offset) = keras.Model(x, bb({"pixel_values": x})[:, 0, :]), imagenet
    elif name == "clip_vit_base_patch16":
        size = 224
        enc = CLIPVisionEncoder(patch_size=16, hidden_dim=768, num_layers=12, num_heads=12, intermediate_dim=3072,
                                image_shape=(size, size, 3), dtype=dtype)
        x = keras.Input((size, size, 3))
        y = keras.layers.Dense(512, use_bias=False, dtype=dtype)(enc({"images": x})[:, 0, :])  # vision_projection
        model = keras.Model(x, y)
        scale, offset = mean_std((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
    elif name == "siglip_base_patch16_224":
        size = 224
        enc = SigLIPVisionEncoder(patch_size=16, hidden_dim=768, num_layers=12, num_heads=12, intermediate_dim=3072,
                                  image_shape=(size, size, 3), dtype=dtype)
        x = keras.Input((size, size, 3))
        model, scale, offset = keras.Model(x, enc({"images": x})), 1 / 127.5, -1.0
    else:
        raise ValueError(name)
    dim = int(model.output_shape[-1])
    settings = {"name": f"hub:{name}", "weights": "none", "image_size": size, "dim": dim}
    return Backbone(model, ScaleOffset(scale, offset), dim, size, settings, mixed_precision=bool(mixed))


def measure(build, batch: int, seconds: float, max_batches: int, xla: bool) -> dict:
    from featx.runtime.backend import to_numpy

    t0 = time.perf_counter()
    bb = build()
    built = time.perf_counter() - t0
    fn = bb.feature_function(xla=xla)
    x = np.random.default_rng(0).integers(0, 256, (batch, bb.image_size, bb.image_size, 3), dtype=np.uint8)
    t0 = time.perf_counter()
    out = to_numpy(fn(x))
    first = time.perf_counter() - t0
    assert out.shape == (batch, bb.dim) and np.isfinite(out).all(), (out.shape, bb.dim)
    times = []
    while len(times) < max_batches and (not times or sum(times) < seconds):
        t0 = time.perf_counter()
        to_numpy(fn(x))
        times.append(time.perf_counter() - t0)
    steady = float(np.median(times))
    return {"dim": bb.dim, "image_size": bb.image_size, "params": int(bb.model.count_params()),
            "build_s": round(built, 2), "first_batch_s": round(first, 2), "timed_batches": len(times),
            "batch_s": round(steady, 3), "images_per_second": round(batch / steady, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=4.0, help="timed seconds per model (after the warm-up batch)")
    ap.add_argument("--max-batches", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated names (registered, or hub:PRESET of the curated list)")
    ap.add_argument("--no-hub", action="store_true", help="skip the hub: architectures")
    args = ap.parse_args()

    from featx.backbones import HUB_PRESETS, build_backbone, list_backbones
    from featx.runtime.accel import resolve_accel

    accel = resolve_accel(None, None)
    mixed = getattr(accel, "policy", None) if accel.mixed_precision else False
    jobs = [(i.name, "registry", (lambda n=i.name: build_backbone(n, weights=None, mixed_precision=mixed)))
            for i in list_backbones()]
    if not args.no_hub:
        try:
            import keras_hub  # noqa: F401

            jobs += [(f"hub:{h.name}", "architecture", (lambda n=h.name: hub_architecture(n, mixed))) for h in HUB_PRESETS]
        except ImportError:
            print("keras-hub not installed: hub: architectures skipped", file=sys.stderr)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    rows = []
    for name, source, build in jobs:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        row = {"name": name, "source": source, **measure(build, args.batch, args.seconds, args.max_batches, accel.xla)}
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        row["load_avg_1min"] = round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    import keras

    print(json.dumps({
        "benchmark": "bench_backbones", "batch": args.batch, "weights": "random",
        "device": accel.device, "mixed_precision": bool(accel.mixed_precision), "xla": bool(accel.xla),
        "keras": keras.__version__, "backend": keras.backend.backend(), "cpus": os.cpu_count(),
        "load_avg_1min_at_end": load, "python": platform.python_version(), "models": rows,
    }, indent=1))


if __name__ == "__main__":
    main()
