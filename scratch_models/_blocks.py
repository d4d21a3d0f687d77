"""Shared pieces of the scratch models: argument checks, input, conv module, head.

Naming convention: every layer gets an explicit name, ``{block}_{op}`` or
``{block}_{op}_{branch}`` (``block1_conv``, ``3a_conv_1x1``, ``3a_bn_3x3_reduce``),
so that names are deterministic across builds and usable for checkpoints and
feature extraction.
"""

from __future__ import annotations

import numbers

import keras
from keras import layers


def channel_axis() -> int:
    """Channel axis for the current ``keras.config.image_data_format()``."""
    return 1 if keras.config.image_data_format() == "channels_first" else -1


def l2(reg: float | None) -> keras.regularizers.Regularizer | None:
    """An L2 kernel regularizer, or None when ``reg`` is falsy."""
    return keras.regularizers.L2(reg) if reg else None


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_input_shape(
    input_shape, *, model: str, default: int, channels: int = 3, min_size: int = 1
) -> tuple[int, int, int]:
    """Validate ``input_shape`` (None -> canonical ``default`` size); returns a tuple.

    Raises:
        ValueError: if it is not a 3-tuple of positive ints or is below ``min_size``.
    """
    channels_first = keras.config.image_data_format() == "channels_first"
    if input_shape is None:
        return (channels, default, default) if channels_first else (default, default, channels)
    layout = "(channels, height, width)" if channels_first else "(height, width, channels)"
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape is None or len(shape) != 3 or not all(_is_int(d) and d > 0 for d in shape):
        raise ValueError(
            f"{model}: input_shape must be a tuple of 3 positive ints {layout}, "
            f"got {input_shape!r}."
        )
    shape = tuple(int(d) for d in shape)
    spatial = shape[1:] if channels_first else shape[:2]
    if min(spatial) < min_size:
        raise ValueError(
            f"{model}: input_shape {shape} is too small; height and width must be "
            f">= {min_size} (canonical size is {default}x{default})."
        )
    return shape


def check_classes(classes, *, model: str, default: int) -> int:
    """Validate ``classes`` (None -> ``default``).

    Raises:
        ValueError: if it is not an int >= 2.
    """
    if classes is None:
        return default
    if not _is_int(classes) or classes < 2:
        raise ValueError(
            f"{model}: classes must be an int >= 2 (the number of labels), got {classes!r}."
        )
    return int(classes)


def model_input(shape: tuple[int, int, int]) -> keras.KerasTensor:
    """The model input, always named ``input`` (Keras would number it otherwise)."""
    return keras.Input(shape=shape, name="input")


def conv_module(
    x,
    filters: int,
    kernel_size: int,
    *,
    name: str,
    branch: str | None = None,
    strides: int = 1,
    padding: str = "same",
    reg: float | None = None,
):
    """GoogLeNet-style conv module: CONV => BN => RELU.

    Layers are named ``{name}_conv``, ``{name}_bn``, ``{name}_relu`` (with a
    ``_{branch}`` suffix when ``branch`` is given).  The conv keeps its bias, as
    in the book, and gets an L2 kernel regularizer when ``reg`` is set.
    """
    suffix = f"_{branch}" if branch else ""
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        kernel_regularizer=l2(reg),
        name=f"{name}_conv{suffix}",
    )(x)
    x = layers.BatchNormalization(axis=channel_axis(), name=f"{name}_bn{suffix}")(x)
    return layers.Activation("relu", name=f"{name}_relu{suffix}")(x)


def average_pool(x, pool_size: int, *, name: str = "avg_pool"):
    """``pool_size`` average pooling as in the book when the feature map is exactly
    ``pool_size x pool_size``; global average pooling (same result there) otherwise,
    so other input sizes work.  Output keeps 1x1 spatial dims either way."""
    spatial = x.shape[2:] if channel_axis() == 1 else x.shape[1:3]
    if tuple(spatial) == (pool_size, pool_size):
        return layers.AveragePooling2D(pool_size, name=name)(x)
    return layers.GlobalAveragePooling2D(keepdims=True, name=name)(x)


def classifier(x, classes: int, *, reg: float | None = None, name: str = "predictions"):
    """Final softmax Dense, kept in float32 so outputs are float32 under mixed precision."""
    return layers.Dense(
        classes,
        activation="softmax",
        kernel_regularizer=l2(reg),
        dtype="float32",
        name=name,
    )(x)
