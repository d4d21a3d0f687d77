"""The built feature extractor every backbone kind returns (:class:`Backbone`).

A module of its own so that the builders (:mod:`featx.backbones.backbone` for registry names,
:mod:`featx.backbones.saved` for ``keras:`` files) both return it without importing each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass
class Backbone:
    """A built feature extractor.

    Attributes:
        model: Keras model mapping preprocessed ``(N, S, S, 3)`` floats to ``(N, dim)`` features.
        preprocess: maps float32 RGB 0..255 batches to the model's input (identity for ``none``).
        dim: feature length.
        image_size: input side ``S`` in pixels.
        settings: JSON-able description (``name``, ``weights``, ``image_size``, ``preprocessing``,
            ``dim``, plus a sha256 of any local weights or model file).
        mixed_precision: whether the model computes in float16 (features are returned as float32).
    """

    model: object
    preprocess: Callable
    dim: int
    image_size: int
    settings: dict
    mixed_precision: bool = False

    @property
    def name(self) -> str:
        return self.settings["name"]

    def feature_function(self, *, xla: bool | None = None):
        """A compiled function: uint8/float RGB 0..255 batch ``(N, H, W, 3)`` -> float32 ``(N, dim)``.

        Inputs of another size are resized on the fly (bilinear, antialiased); preprocessing and
        the forward pass (``training=False``) are written with ``keras.ops`` and compiled together
        by :func:`featx.runtime.backend.compile_forward` (a ``tf.function``, with XLA if asked;
        ``jax.jit``; ``torch.compile``), so every Keras backend runs the same code. ``xla=None``:
        the backend's default on a CPU (jit under JAX only; see :func:`featx.runtime.accel.resolve_accel`).
        """
        from keras import ops

        from featx.runtime import backend

        size, model, preprocess = self.image_size, self.model, self.preprocess

        def features(x):
            x = ops.cast(x, "float32")
            if x.shape[1] != size or x.shape[2] != size:
                x = ops.image.resize(x, (size, size), interpolation="bilinear", antialias=True)
            y = model(preprocess(x), training=False)
            return ops.cast(y, "float32")

        jit = backend.backend_name() == "jax" if xla is None else bool(xla)
        return backend.compile_forward(features, jit=jit, model=model)

    def __call__(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Features of an in-memory batch of RGB images (uint8 or float 0..255)."""
        fn = getattr(self, "_fn", None) or self.feature_function()
        self._fn = fn
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected RGB images of shape (N, H, W, 3). Received: {images.shape}")
        from featx.runtime.backend import to_numpy

        out = [to_numpy(fn(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
