"""Shared helpers for the from-scratch tests: tiny synthetic stores and a tiny registered CNN.

``tinycnn`` is registered into ``scratch_models`` only by the tests (a conv-BN-ReLU-pool stack,
~1k parameters) so resume/evaluate tests run in seconds; one test trains the real MiniGoogLeNet.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TINY = "tinycnn"
#: no BatchNorm, no dropout: a training step is a pure function of the weights and the batch
PLAIN = "tinyplain"


def register_tiny() -> str:
    """Register ``tinycnn`` in the scratch model registry (once per process)."""
    import keras
    from keras import layers

    import scratch_models
    from scratch_models import register_model

    if TINY in scratch_models.list_models():
        return TINY

    @register_model(name=TINY, description="test-only tiny CNN", input_size=16, default_classes=3,
                    feature_layer="gap", min_input_size=4)
    def tinycnn(input_shape=None, classes=None, *, name=TINY):
        inputs = keras.Input(shape=input_shape or (16, 16, 3), name="input")
        x = layers.Conv2D(8, 3, padding="same", name="conv1")(inputs)
        x = layers.BatchNormalization(name="bn1")(x)
        x = layers.Activation("relu", name="relu1")(x)
        x = layers.MaxPooling2D(2, name="pool1")(x)
        x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        outputs = layers.Dense(classes or 3, activation="softmax", dtype="float32", name="predictions")(x)
        return keras.Model(inputs, outputs, name=name)

    return TINY


def register_plain() -> str:
    """Register ``tinyplain`` (conv-ReLU-GAP-dense, ~150 parameters, no BatchNorm, no dropout):
    one step on one global batch gives the same weights on any number of replicas."""
    import keras
    from keras import layers

    import scratch_models
    from scratch_models import register_model

    if PLAIN in scratch_models.list_models():
        return PLAIN

    @register_model(name=PLAIN, description="test-only tiny CNN without BatchNorm", input_size=16,
                    default_classes=3, feature_layer="gap", min_input_size=4)
    def tinyplain(input_shape=None, classes=None, *, name=PLAIN):
        inputs = keras.Input(shape=input_shape or (16, 16, 3), name="input")
        x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        outputs = layers.Dense(classes or 3, activation="softmax", dtype="float32", name="predictions")(x)
        return keras.Model(inputs, outputs, name=name)

    return PLAIN


def make_stores(tmp, *, size=20, classes=3, n_train=64, n_val=30, n_test=37):
    """train/val/test synthetic image stores under ``tmp``; returns their paths (str)."""
    from featx.data.synthetic import write_synthetic_store

    paths = {}
    for split, n, seed in (("train", n_train, 0), ("val", n_val, 1), ("test", n_test, 2)):
        p = tmp / f"{split}.h5"
        write_synthetic_store(p, n, size, classes, seed=seed, compute_mean=(split == "train"))
        paths[split] = str(p)
    return paths
