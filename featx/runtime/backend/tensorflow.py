"""The TensorFlow backend of :mod:`featx.runtime.backend` (imports TensorFlow)."""

from __future__ import annotations

import tensorflow as tf


def gpu_count() -> int:
    return len(tf.config.list_physical_devices("GPU"))


def bf16_supported() -> bool:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    caps = [tf.config.experimental.get_device_details(g).get("compute_capability") for g in gpus]
    return all(c is not None and tuple(c) >= (8, 0) for c in caps)


def set_memory_growth() -> None:
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: the setting can no longer change
            pass


def compile_forward(fn, *, jit: bool, model=None):
    # a graph either way; XLA only when asked (on a CPU it mostly adds compile time)
    return tf.function(fn, jit_compile=bool(jit), reduce_retracing=True)


def to_numpy(x):
    import numpy as np

    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)
