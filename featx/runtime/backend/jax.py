"""The JAX backend of :mod:`featx.runtime.backend` (imports JAX)."""

from __future__ import annotations

import os

import numpy as np


def gpu_count() -> int:
    import jax

    try:
        return len(jax.devices("gpu"))
    except RuntimeError:  # no GPU platform in this jaxlib / on this machine
        return 0


def bf16_supported() -> bool:
    import jax

    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        return False
    caps = [getattr(d, "compute_capability", None) for d in gpus]
    return bool(gpus) and all(c is not None and float(c) >= 8.0 for c in caps)


def set_memory_growth() -> None:
    # JAX preallocates 75% of each GPU on first use unless told not to (read at backend start-up)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def compile_forward(fn, *, jit: bool, model=None):
    if not jit:
        return fn
    import jax

    if model is None:
        return jax.jit(fn)
    import keras

    variables = list(model.variables)

    def pure(values, x):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(x)

    compiled = jax.jit(pure)

    def forward(x):
        return compiled([v.value for v in variables], x)

    return forward


def to_numpy(x):
    return np.asarray(x)
