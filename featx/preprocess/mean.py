"""Mean subtraction with the build's per-channel RGB means.

The means are computed by ``featx build`` over the training split (the train file's ``mean_rgb``
attr and ``OUT_DIR/mean.json``). featx subtracts them *inside* the model, with a Keras
``Normalization(mean=..., variance=1)`` layer placed right after the input, so a saved
``model.keras`` is self-contained: evaluate, predict and ``featx extract --backbone keras:...``
feed it raw 0..255 RGB, and no custom object is needed to load it.
"""

from __future__ import annotations

import os
from pathlib import Path

from featx.errors import FeatxError
from featx.utils import read_json

#: Name of the mean subtraction layer in exported models.
LAYER_NAME = "mean_subtraction"


def read_mean_json(path: str | os.PathLike) -> list[float]:
    """``[R, G, B]`` from a ``mean.json`` written by ``featx build`` (``{"R":..,"G":..,"B":..}``)."""
    try:
        d = read_json(path)
        return [float(d["R"]), float(d["G"]), float(d["B"])]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FeatxError(
            f"cannot read RGB means from {path} ({type(e).__name__}: {e}); "
            'expected {"R": ..., "G": ..., "B": ...} as written by featx build'
        ) from None


def load_mean(reader, mean_path: str | os.PathLike | None = None) -> list[float]:
    """The RGB means to subtract: ``mean_path`` when given, else the train file's ``mean_rgb``,
    else ``mean.json`` next to it."""
    if mean_path is not None:
        return read_mean_json(mean_path)
    if reader.mean_rgb is not None:
        return list(reader.mean_rgb)
    sibling = Path(reader.path).with_name("mean.json")
    if sibling.exists():
        return read_mean_json(sibling)
    raise FeatxError(
        f"{reader.path} has no mean_rgb attr and there is no mean.json next to it; "
        "pass --mean PATH/mean.json (written by featx build)"
    )


def mean_subtraction(mean_rgb, name: str = LAYER_NAME):
    """A Keras layer computing ``x - mean_rgb`` (a ``Normalization`` layer with unit variance)."""
    import keras

    mean = [float(m) for m in mean_rgb]
    return keras.layers.Normalization(axis=-1, mean=mean, variance=[1.0] * len(mean), name=name)


def with_mean_subtraction(model, mean_rgb, name: str = LAYER_NAME):
    """A flat copy of functional ``model`` whose input goes through mean subtraction first.

    The layers (and weights) of ``model`` are reused, not copied, and keep their names, so the
    feature layer of a scratch model (e.g. ``flatten``) is still found by ``model.get_layer``.
    """
    import keras

    inputs = keras.Input(shape=model.input_shape[1:], name=model.inputs[0].name or "input")
    subtract = mean_subtraction(mean_rgb, name=name)
    centred = subtract(inputs)

    def call(layer, *args, **kwargs):
        if args and args[0] is inputs:
            args = (centred, *args[1:])
        return layer(*args, **kwargs)

    return keras.models.clone_model(
        model, input_tensors=inputs, clone_function=lambda layer: layer, call_function=call
    )
