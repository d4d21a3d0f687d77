"""The backend seam: what depends on Keras' backend (TensorFlow, JAX or PyTorch) lives behind it.

Keras 3 runs the same models on ``KERAS_BACKEND=tensorflow|jax|torch``; featx's networks go through
Keras APIs only (``keras.ops``, the model's call, dtype policies), and the few things that differ
per backend are the functions of this module, each implemented once per backend in
:mod:`~featx.runtime.backend.tensorflow`, :mod:`~featx.runtime.backend.jax` and
:mod:`~featx.runtime.backend.torch` (as ``keras/src/backend/`` does)::

    from featx.runtime import backend

    backend.backend_name()                 # "tensorflow" | "jax" | "torch", as Keras reads it
    backend.gpu_count()                    # GPUs this process sees
    backend.set_memory_growth()            # take GPU memory as needed (before the first GPU op)
    fn = backend.compile_forward(f, jit=True, model=model)   # tf.function(jit_compile) / jax.jit / torch.compile
    backend.to_numpy(fn(x))                # float32 numpy, whatever the backend's tensor type
    backend.require_tensorflow("--strategy mirrored")         # one-line FeatxError under JAX/PyTorch

The backend is fixed when Keras is first imported (``KERAS_BACKEND``, else ``keras.json``, else
TensorFlow). Importing this module imports neither Keras nor any backend; TensorFlow is imported only
when the TensorFlow backend is the one in use.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from featx.errors import FeatxError

#: The backends featx runs on (Keras also has ``numpy`` and ``openvino``: inference only, no training).
BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"


def configured_backend() -> str:
    """The backend Keras will use (or uses), read the way Keras reads it, without importing Keras.

    ``KERAS_BACKEND`` wins; else ``backend`` in ``$KERAS_HOME/keras.json`` (``~/.keras``); else
    TensorFlow. Once Keras is imported its own answer is returned.
    """
    if "keras" in sys.modules:
        return backend_name()
    return backend_from_config(os.environ)


def backend_from_config(environ) -> str:
    """What Keras reads at import: ``KERAS_BACKEND`` in ``environ``, else ``keras.json``, else TensorFlow."""
    env = environ.get("KERAS_BACKEND")
    if env:
        return env.strip().lower()
    if "KERAS_HOME" in environ:
        folder = environ["KERAS_HOME"]
    else:  # ~/.keras, or /tmp/.keras when the home folder is read-only (as keras/src/backend/config.py)
        base = os.path.expanduser("~")
        folder = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    try:
        with open(os.path.join(os.path.expanduser(folder), "keras.json")) as f:
            name = json.load(f).get("backend")
    except (OSError, ValueError, AttributeError):
        name = None
    return str(name).strip().lower() if name else DEFAULT_BACKEND


def backend_name() -> str:
    """The backend of this process's Keras: ``keras.backend.backend()`` (imports Keras)."""
    import keras

    return keras.backend.backend()


def _impl(name: str | None = None):
    name = name or backend_name()
    if name != "tensorflow":
        hide_unloaded_tensorflow()
    if name == "tensorflow":
        from featx.runtime.backend import tensorflow as impl
    elif name == "jax":
        from featx.runtime.backend import jax as impl
    elif name == "torch":
        from featx.runtime.backend import torch as impl
    else:
        from featx.runtime.backend import other as impl
    return impl


def hide_unloaded_tensorflow() -> bool:
    """Under JAX or PyTorch, keep Keras from importing TensorFlow just because it is installed.

    Keras asks ``tf.available`` (which imports TensorFlow when it is installed: seconds and hundreds
    of MB) in ``keras.utils.set_random_seed`` and when it serializes a model, whatever the backend.
    Keras 3.15 has no public switch for this (checked up to its 3.16 development sources: no
    environment variable or config call; ``available`` caches an import attempt in the private
    ``LazyModule._available``). When TensorFlow is not loaded yet, that cache is set to False, so
    this process behaves as it would on a machine without TensorFlow.

    Fails soft: returns True when TensorFlow is hidden (or already loaded: nothing to hide), False
    when this Keras no longer has the private attribute; featx then still works and Keras just
    imports TensorFlow (tests/test_backend.py detects that the attribute is gone).
    """
    if "tensorflow" in sys.modules:
        return True
    try:
        from keras.src.utils import module_utils

        lazy = module_utils.tensorflow
        if "_available" not in vars(lazy) or not isinstance(getattr(type(lazy), "available", None), property):
            return False  # another Keras: setting an attribute it never reads would hide nothing
        if lazy._available is None:  # not asked yet (True/False: Keras already knows)
            lazy._available = False
        return lazy._available is False
    except Exception:  # noqa: BLE001 - any other Keras layout: featx works, Keras may import TensorFlow
        return False


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed`` (Python, NumPy and the backend's seeds), never importing
    TensorFlow under another backend."""
    import keras

    if backend_name() != "tensorflow":
        hide_unloaded_tensorflow()
    keras.utils.set_random_seed(int(seed))


def gpu_count() -> int:
    """GPUs this process's backend sees (0 on a CPU-only machine)."""
    return int(_impl().gpu_count())


def bf16_supported() -> bool:
    """Whether every GPU computes bfloat16 natively (compute capability 8.0+: A100, H100, RTX 30xx...)."""
    return bool(_impl().bf16_supported())


def set_memory_growth() -> None:
    """Take GPU memory as needed rather than all of it, so several processes share a GPU.

    TensorFlow: ``set_memory_growth`` on every GPU; JAX: ``XLA_PYTHON_CLIENT_PREALLOCATE=false``
    (honoured only before JAX's first GPU use); PyTorch: nothing to do (its allocator grows on
    demand). Call it before any GPU op; it never fails.
    """
    _impl(configured_backend()).set_memory_growth()


def compile_forward(fn, *, jit: bool, model=None):
    """An inference function running ``fn(x)`` compiled the backend's way.

    TensorFlow: ``tf.function`` (``jit_compile=jit``); JAX: ``jax.jit`` when ``jit`` (else eager);
    PyTorch: ``torch.compile`` when ``jit`` (eager if it cannot compile), always under
    ``torch.no_grad``. ``model`` names the Keras model ``fn`` calls: under JAX its variables are
    passed to the compiled program as arguments (``keras.StatelessScope``) instead of being baked
    in as constants (which makes compiling a 25M-parameter network slow and its program huge).
    ``fn`` must not change the model's state (call it with ``training=False``).
    """
    return _impl().compile_forward(fn, jit=bool(jit), model=model)


def to_numpy(x) -> np.ndarray:
    """A backend tensor (or anything array-like) as a NumPy array on the host."""
    if isinstance(x, np.ndarray):
        return x
    return _impl().to_numpy(x)


def needs_tensorflow_message(what: str, name: str | None = None) -> str:
    name = name or configured_backend()
    return (
        f"{what} needs the TensorFlow backend; this featx runs Keras on {name} "
        f"(KERAS_BACKEND={name}): run it with KERAS_BACKEND=tensorflow"
    )


def require_tensorflow(what: str) -> None:
    """Raise a one-line :class:`FeatxError` naming TensorFlow unless it is the backend in use.

    Cheap: reads the configured backend without importing Keras when Keras is not loaded yet.
    """
    name = configured_backend()
    if name != "tensorflow":
        raise FeatxError(needs_tensorflow_message(what, name))


def is_tensorflow() -> bool:
    """Whether the TensorFlow backend is (or will be) the one in use; imports nothing."""
    return configured_backend() == "tensorflow"
