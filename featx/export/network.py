"""The exported network: uint8 RGB pixels in, class probabilities out, built from Keras' own layers.

::

    images uint8 (N, S, S, 3)
      -> preprocessing layers (the backbone's: ``caffe``, ``tf`` or ``none``)
      -> backbone (the same Keras model and weights ``featx predict`` runs)
      -> classifier: Dense(C) holding the scaler and the logistic regression (:func:`featx.fit.dense_head`)
      -> probabilities: Softmax (or log_sigmoid + Softmax for a one-vs-rest classifier)

Only built-in Keras layers are used (no ``Lambda``, no custom class), so ``model.keras`` loads
with ``safe_mode`` on and without featx, and every converter (SavedModel, ONNX, TFLite) sees plain
operations. ``caffe`` preprocessing (RGB -> BGR, minus the ImageNet means) is a frozen
``Dense(3)`` on the channel axis with a permutation kernel and the negated means as bias: exactly
``keras.applications``' ``preprocess_input`` (multiplying by 1 and 0 and adding 0 are exact).
"""

from __future__ import annotations

import numpy as np

from featx.errors import FeatxError

#: Name of the model's input and output (also the SavedModel signature keys and ONNX names).
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
#: ``keras.applications`` caffe means, BGR order.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
PREPROCESSING = ("caffe", "tf", "none")


def preprocessing_layers(name: str) -> list:
    """Keras layers mapping uint8 RGB 0..255 to the backbone's input (the first one casts to float32)."""
    import keras

    if name == "tf":  # [-1, 1]
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_tf")]
    to_float = keras.layers.Rescaling(1.0, name="to_float32")
    if name == "none":
        return [to_float]
    if name == "caffe":
        bgr = keras.layers.Dense(
            3, trainable=False, name="preprocess_caffe",
            kernel_initializer=keras.initializers.Constant(np.eye(3, dtype=np.float32)[::-1].copy()),
            bias_initializer=keras.initializers.Constant(-np.asarray(CAFFE_MEAN_BGR, dtype=np.float32)),
        )
        return [to_float, bgr]
    raise FeatxError(
        f"featx export knows the preprocessing {', '.join(PREPROCESSING)}; this backbone uses {name!r}"
    )


def classifier_layers(kernel: np.ndarray, bias: np.ndarray, activation: str) -> list:
    """``Dense(C)`` with the folded classifier's weights, then the probabilities."""
    import keras

    dense = keras.layers.Dense(
        int(kernel.shape[1]), name="classifier",
        kernel_initializer=keras.initializers.Constant(kernel), bias_initializer=keras.initializers.Constant(bias),
    )
    if activation == "softmax":
        return [dense, keras.layers.Softmax(name=OUTPUT_NAME)]
    if activation == "ovr":  # per-class sigmoids normalised: softmax(log_sigmoid(z))
        return [dense, keras.layers.Activation("log_sigmoid", name="log_sigmoid"), keras.layers.Softmax(name=OUTPUT_NAME)]
    raise FeatxError(f"unknown classifier activation {activation!r} (expected softmax or ovr)")


def _apply(layers: list, x):
    for layer in layers:
        x = layer(x)
    return x


def classifier_network(backbone, kernel: np.ndarray, bias: np.ndarray, activation: str):
    """The pixels -> probabilities model of a backbone (:class:`featx.backbones.Backbone`) and a folded head."""
    import keras

    size = int(backbone.image_size)
    inputs = keras.Input((size, size, 3), dtype="uint8", name=INPUT_NAME)
    features = backbone.model(_apply(preprocessing_layers(backbone.settings.get("preprocessing", "none")), inputs))
    if len(features.shape) != 2 or int(features.shape[-1]) != kernel.shape[0]:
        raise FeatxError(f"the backbone gives features of shape {tuple(features.shape)}, the classifier expects {kernel.shape[0]}")
    probs = _apply(classifier_layers(kernel, bias, activation), features)
    return keras.Model(inputs, probs, name="featx_export")


def run_network(model):
    """A ``featx train``/``finetune`` model (0..255 floats -> probabilities) behind a uint8 input."""
    import keras

    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise FeatxError(f"the model takes inputs of shape {shape}; featx export needs square RGB images (None, S, S, 3)")
    inputs = keras.Input(shape[1:], dtype="uint8", name=INPUT_NAME)
    probs = model(_apply(preprocessing_layers("none"), inputs))
    probs = keras.layers.Identity(name=OUTPUT_NAME)(probs)
    return keras.Model(inputs, probs, name="featx_export")
