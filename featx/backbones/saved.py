"""``keras:PATH[:LAYER]``: any saved Keras model, cut at a named layer, as a feature backbone.

A network trained by ``featx train`` (``RUN_DIR/model.keras``) can serve as a backbone: by default
it is cut at the input of its final ``Dense`` layer (the classifier), and a 4-D output is globally
average-pooled. Such models embed their own input scaling (e.g. mean subtraction), so RGB 0..255
floats go in unchanged (preprocessing ``none``).
"""

from __future__ import annotations

import os
from pathlib import Path

from featx.backbones.base import Backbone
from featx.backbones.registry import KERAS_PREFIX
from featx.backbones.weights import IMAGENET, NONE, sha256_file
from featx.errors import FeatxError

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
EMBEDDED = "embedded"
DEFAULT_SIZE = 224


def parse_keras_spec(spec: str) -> tuple[str, str | None]:
    """``"keras:PATH[:LAYER]"`` -> ``(PATH, LAYER or None)``; a ``:`` inside PATH is allowed."""
    rest = spec[len(KERAS_PREFIX):] if spec.lower().startswith(KERAS_PREFIX) else spec
    if not rest:
        raise FeatxError(f"expected keras:PATH[:LAYER] (a saved .keras model). Received: {spec!r}")
    if ":" in rest:
        path, layer = rest.rsplit(":", 1)
        if path.lower().endswith(MODEL_SUFFIXES) or os.path.isfile(path):
            return path, (layer or None)
    return rest, None


def _load(path: str):
    from featx.runtime.keras_files import load_keras_model

    return load_keras_model(path, compile=False)


def _default_cut(model):
    """The layer feeding the last Dense layer (the classifier), or the model output if none."""
    import keras

    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        return model.outputs[0], model.layers[-1].name
    head = dense[-1]
    tensor = head.input
    return tensor, getattr(getattr(tensor, "_keras_history", None), "operation", head).name


def build_saved(spec: str, *, weights=IMAGENET, image_size: int | None = None):
    """Build a :class:`~featx.backbones.base.Backbone` from ``keras:PATH[:LAYER]``."""
    import keras

    path, layer = parse_keras_spec(spec)
    if weights not in (None, IMAGENET, NONE, EMBEDDED):
        raise FeatxError(
            f"a keras: backbone uses the weights saved in its model file; drop --weights. Received: {weights!r}"
        )
    file = Path(path).expanduser()
    if not file.is_file():
        raise FeatxError(f"saved Keras model {path} does not exist (expected keras:PATH[:LAYER], e.g. keras:runs/mini/model.keras)")
    file = file.resolve()
    model = _load(str(file))
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise FeatxError(f"{file} is not a functional/sequential Keras model with a defined input")
    if layer:
        try:
            out = model.get_layer(layer).output
        except ValueError:
            names = ", ".join(lyr.name for lyr in model.layers[-8:])
            raise FeatxError(f"{file} has no layer {layer!r} (last layers: {names})") from None
    else:
        out, layer = _default_cut(model)
    if len(out.shape) == 4:
        out = keras.layers.GlobalAveragePooling2D(name="featx_gap")(out)
    elif len(out.shape) != 2:
        out = keras.layers.Flatten(name="featx_flatten")(out)
    extractor = keras.Model(model.inputs[0], out, name=f"{model.name}_features")

    in_shape = tuple(model.inputs[0].shape)
    if len(in_shape) != 4 or in_shape[-1] != 3:
        raise FeatxError(f"{file} takes inputs of shape {in_shape}; featx backbones take RGB images (N, H, W, 3)")
    fixed = in_shape[1] if in_shape[1] == in_shape[2] else None
    if fixed is not None and image_size is not None and int(image_size) != fixed:
        raise FeatxError(f"{file} takes {fixed}x{fixed} images; drop --image-size or pass --image-size {fixed}")
    size = int(image_size or fixed or DEFAULT_SIZE)
    dim = int(extractor.output_shape[-1])
    settings = {
        "name": f"{KERAS_PREFIX}{file}:{layer}",
        "weights": EMBEDDED,
        "image_size": size,
        "preprocessing": "none",
        "dim": dim,
        "layer": layer,
        "model_sha256": sha256_file(file),
    }
    return Backbone(extractor, _identity, dim, size, settings, mixed_precision=False)


def _identity(x):
    return x
