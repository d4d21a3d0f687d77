"""The exported network: uint8 RGB pixels in, class probabilities out, built from Keras' own layers.

::

    images uint8 (N, S, S, 3) -> float32
      -> the backbone as one network from pixels (:func:`featx.backbones.layers.pixel_network`:
         its preprocessing ``caffe``/``tf``/``torch``/``none`` as Keras layers, then the same Keras
         model and weights ``featx predict`` runs)
      -> classifier: Dense(C) holding the scaler and the logistic regression (:func:`featx.fit.dense_head`)
      -> probabilities: Softmax (or log_sigmoid + Softmax for a one-vs-rest classifier)

Preprocessing that :mod:`featx.backbones.layers` does not name is still exported when it is an
affine map of each pixel's RGB: a KerasHub converter's per-channel ``scale``/``offset`` (recorded
in the settings), or any other function measured on probe pixels (:func:`preprocessing_layers`),
as one frozen ``Dense(3)`` on the channel axis; the parity check vouches for the result.

Only built-in Keras layers are used (no ``Lambda``, no custom class), so ``model.keras`` loads
with ``safe_mode`` on and without featx, and every converter (SavedModel, ONNX, TFLite) sees plain
operations.
"""

from __future__ import annotations

import numpy as np

from featx.errors import FeatxError

#: Name of the model's input and output (also the SavedModel signature keys and ONNX names).
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"


def _affine_layer(kernel: np.ndarray, bias: np.ndarray, name: str):
    """A frozen ``Dense(3)`` on the channel axis: ``x @ kernel + bias`` per pixel."""
    import keras

    return keras.layers.Dense(
        3, trainable=False, name=name,
        kernel_initializer=keras.initializers.Constant(np.asarray(kernel, np.float32)),
        bias_initializer=keras.initializers.Constant(np.asarray(bias, np.float32)),
    )


def preprocessing_layers(name: str, settings: dict | None = None, preprocess=None) -> list:
    """Keras layers for a preprocessing :mod:`featx.backbones.layers` does not name (float32 in).

    A KerasHub backbone's ``scale``/``offset`` (in ``settings``) become one per-channel affine
    layer; any other ``preprocess`` function is measured on probe pixels and used when it is an
    affine map per pixel; otherwise the export is refused in one line.
    """
    settings = settings or {}
    if "scale" in settings or "offset" in settings:  # KerasHub's image converter: x * scale + offset
        scale = np.broadcast_to(np.asarray(1.0 if settings.get("scale") is None else settings["scale"], np.float64), (3,))
        offset = np.broadcast_to(np.asarray(0.0 if settings.get("offset") is None else settings["offset"], np.float64), (3,))
        return [_affine_layer(np.diag(scale), offset, "preprocess_scale_offset")]
    if preprocess is not None:
        kernel, bias = _probe_affine(preprocess, name)
        return [_affine_layer(kernel, bias, f"preprocess_{name}")]
    raise FeatxError(f"featx export cannot express the preprocessing {name!r} as Keras layers")


def _probe_affine(preprocess, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(kernel, bias)`` with ``preprocess(x) == x @ kernel + bias`` per pixel, or a one-line refusal."""
    probe = np.zeros((1, 1, 5, 3), np.float32)
    probe[0, 0, 1:4] = np.eye(3, dtype=np.float32) * 100.0
    rng = np.random.default_rng(0)
    check = rng.uniform(0, 255, (1, 4, 4, 3)).astype(np.float32)
    try:
        out = np.asarray(preprocess(probe.copy()), dtype=np.float64)
        got = np.asarray(preprocess(check.copy()), dtype=np.float64)
    except Exception as e:  # noqa: BLE001 - a plugin's function: any failure is a refusal
        raise FeatxError(f"cannot export the preprocessing {name!r}: it fails on a probe batch ({type(e).__name__})") from None
    if out.shape != probe.shape or got.shape != check.shape:
        raise FeatxError(f"cannot export the preprocessing {name!r}: it changes the image shape")
    bias = out[0, 0, 0]
    kernel = (out[0, 0, 1:4] - bias) / 100.0
    want = check.astype(np.float64) @ kernel + bias
    if not np.allclose(got, want, rtol=1e-5, atol=1e-4 * max(1.0, np.abs(want).max())):
        raise FeatxError(f"cannot export the preprocessing {name!r}: it is not an affine map of each pixel's RGB")
    return kernel, bias


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

    from featx.backbones.layers import PREPROCESSING, pixel_network

    size = int(backbone.image_size)
    inputs = keras.Input((size, size, 3), dtype="uint8", name=INPUT_NAME)
    x = keras.layers.Rescaling(1.0, name="to_float32")(inputs)
    settings = backbone.settings
    kind = settings.get("preprocessing", "none")
    if kind in PREPROCESSING and "scale" not in settings and "offset" not in settings:
        features = pixel_network(backbone, name="backbone")(x)
    else:
        layers = preprocessing_layers(kind, settings, backbone.preprocess)
        features = backbone.model(_apply(layers, x), training=False)
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
    x = keras.layers.Rescaling(1.0, name="to_float32")(inputs)
    probs = model([x] if isinstance(model.input, list) else x)  # the structure its inputs were declared in
    probs = keras.layers.Identity(name=OUTPUT_NAME)(probs)
    return keras.Model(inputs, probs, name="featx_export")
