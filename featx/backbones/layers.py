"""A backbone as one Keras network from raw 0..255 RGB pixels: resize, preprocessing, features.

``featx extract`` runs ``resize -> preprocess -> model`` in a compiled function
(:meth:`featx.backbones.Backbone.feature_function`). :func:`pixel_network` builds the same steps as
Keras layers, so the network can be saved (``model.keras``), trained (``featx finetune``) or
served, and its features equal the extractor's on the same images:

* resize: ``keras.layers.Resizing(S, S, antialias=True)`` (bilinear), only when the network's
  input side differs from the backbone's;
* preprocessing (:func:`preprocessing_layers`), the registry's names with Keras' own layers only
  (a saved model loads without custom objects): ``caffe`` (RGB -> BGR and minus the ImageNet
  means: one fixed 1x1 convolution, exact), ``tf`` (``x / 127.5 - 1``: ``Rescaling``), ``torch``
  (``x / 255`` then ImageNet mean and std: ``Rescaling`` + ``Normalization``), ``none``;
* the backbone model, called with ``training=False``.

These layers compute in float32 and are not trainable.
"""

from __future__ import annotations

from featx.errors import FeatxError

#: ImageNet means in BGR order (Keras' ``caffe`` preprocessing)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
PREPROCESSING = ("caffe", "tf", "torch", "none")


def preprocessing_layers(kind: str, name: str = "featx_preprocess", settings: dict | None = None) -> list:
    """Keras layers mapping float RGB 0..255 to the backbone's input for preprocessing ``kind``
    (``settings`` that record an exact ``scale`` and ``offset``, as ``hub:`` presets do, give
    ``x * scale + offset`` whatever the kind's name)."""
    import keras
    import numpy as np

    settings = settings or {}
    if settings.get("scale") is not None or settings.get("offset") is not None:
        scale = 1.0 if settings.get("scale") is None else settings["scale"]
        offset = 0.0 if settings.get("offset") is None else settings["offset"]
        return [keras.layers.Rescaling(np.asarray(scale, np.float32), offset=np.asarray(offset, np.float32),
                                       dtype="float32", name=name)]
    if kind == "none":
        return []
    if kind == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, dtype="float32", name=name)]
    if kind == "torch":
        return [
            keras.layers.Rescaling(1 / 255.0, dtype="float32", name=f"{name}_scale"),
            keras.layers.Normalization(mean=list(TORCH_MEAN), variance=[s * s for s in TORCH_STD],
                                       dtype="float32", name=name),
        ]
    if kind == "caffe":
        perm = np.zeros((1, 1, 3, 3), np.float32)
        for i in range(3):
            perm[0, 0, i, 2 - i] = 1.0  # output channel 2 - i takes input channel i: RGB -> BGR
        bias = -np.asarray(CAFFE_MEAN_BGR, np.float32)
        return [keras.layers.Conv2D(
            3, 1, dtype="float32", trainable=False, name=name,
            kernel_initializer=keras.initializers.Constant(perm), bias_initializer=keras.initializers.Constant(bias),
        )]
    raise FeatxError(
        f"cannot express preprocessing {kind!r} as Keras layers (known: {', '.join(PREPROCESSING)}); "
        "this backbone can extract features but not be fine-tuned or exported as one network"
    )


def pixel_network(backbone, input_size: int | None = None, *, name: str | None = None):
    """``keras.Model``: ``(N, C, C, 3)`` RGB 0..255 -> ``(N, dim)`` features of ``backbone``.

    ``input_size`` ``C`` defaults to the backbone's side; another side is resized to it inside
    the network, as the extractor resizes stored images of another size.
    """
    import keras

    size = int(backbone.image_size)
    side = int(input_size or size)
    inputs = keras.Input((side, side, 3), name="pixels")
    x = inputs
    if side != size:
        x = keras.layers.Resizing(size, size, interpolation="bilinear", antialias=True, dtype="float32",
                                  name="featx_resize")(x)
    for layer in preprocessing_layers(backbone.settings.get("preprocessing", "none"), settings=backbone.settings):
        layer.trainable = False
        x = layer(x)
    features = backbone.model(x, training=False)
    return keras.Model(inputs, features, name=name or f"{backbone.model.name}_pixels")


def batchnorm_layers(model) -> list:
    """Every BatchNormalization layer of ``model``, nested models included."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(batchnorm_layers(layer))
    return found
