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
    compiled = tf.function(fn, jit_compile=bool(jit), reduce_retracing=True)
    # XLA compiles one program per shape (callers pad short batches to one shape); a graph is
    # traced once for any batch size instead
    return compiled if jit else _AnyBatch(compiled)


class _AnyBatch:
    """A ``tf.function`` traced for any number of rows at its first call with each row shape and dtype.

    Traced on the first batch's exact shape, a short last batch traced the whole network again
    (``reduce_retracing`` generalises only at the second shape): ResNet50 at 32 px, about 1.5 s of a
    CPU per extract or evaluate whose row count is not a multiple of the batch size.
    """

    def __init__(self, compiled):
        self.compiled = compiled
        self._traced: set = set()

    def __call__(self, x):
        key = (tuple(x.shape[1:]), tf.as_dtype(x.dtype))
        if key not in self._traced:
            self.compiled.get_concrete_function(tf.TensorSpec((None, *key[0]), key[1]))
            self._traced.add(key)
        return self.compiled(x)

    def __getattr__(self, name):  # the tf.function's own API (tracing count, concrete functions)
        return getattr(self.compiled, name)


def to_numpy(x):
    import numpy as np

    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)
