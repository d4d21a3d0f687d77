"""Shared helpers for the transfer-path tests (backbones, extract, fit, predict).

``tiny_model`` saves a ~300-parameter functional Keras model; as ``keras:PATH`` it is a
deterministic backbone that runs in milliseconds, so extract/predict tests need no ImageNet
weights and little CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY_SIZE = 16


def tiny_model(path: Path, size: int = TINY_SIZE, classes: int = 3) -> Path:
    """Save ``input -> rescale -> conv(4) -> gap -> fc(6, relu) -> out(classes)`` to ``path``."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    inputs = keras.Input((size, size, 3), name="input")
    x = layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(6, activation="relu", name="fc")(x)
    outputs = layers.Dense(classes, activation="softmax", name="out")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def reference_features(model_path: Path, layer: str, images: np.ndarray) -> np.ndarray:
    """Features computed directly with Keras (no featx code): the oracle for extract tests."""
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    cut = keras.Model(model.inputs[0], model.get_layer(layer).output)
    return np.asarray(cut(images.astype("float32"), training=False))


def separable_features(n_per_class: int = 40, classes: int = 7, dim: int = 16, seed: int = 0):
    """Gaussian blobs far apart: a linear classifier must score ~100% on them."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 6, (classes, dim))
    X = np.concatenate([c + rng.normal(0, 1, (n_per_class, dim)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(classes), n_per_class)
    perm = rng.permutation(len(y))
    return X[perm], y[perm]


def write_features(path: Path, X: np.ndarray, y: np.ndarray, label_names, backbone: dict | None = None) -> Path:
    """A features HDF5 through the shared writer, as featx extract would write it."""
    from featx.store import StoreWriter

    backbone = backbone or {"name": "synthetic", "weights": "none", "image_size": 16, "preprocessing": "none",
                            "dim": int(X.shape[1])}
    w = StoreWriter(
        path, kind="features", row_shape=(X.shape[1],), dtype=np.float32,
        paths=[f"img_{i:05d}.jpg" for i in range(len(X))], labels=y, label_names=label_names,
        config={"test": str(path)}, attrs={"backbone": backbone["name"], "backbone_settings": backbone},
    )
    with w:
        w.add_batch(0, X)
        w.finish()
    return path
