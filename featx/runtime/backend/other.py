"""Keras' other backends (``numpy``, ``openvino``): inference only, eager, no GPUs counted."""

from __future__ import annotations

import numpy as np


def gpu_count() -> int:
    return 0


def bf16_supported() -> bool:
    return False


def set_memory_growth() -> None:
    pass


def compile_forward(fn, *, jit: bool, model=None):
    return fn


def to_numpy(x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x))
