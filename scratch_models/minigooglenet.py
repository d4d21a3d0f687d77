"""MiniGoogLeNet as in "Deep Learning for Computer Vision with Python", Practitioner Bundle.

Building blocks (conv modules are CONV => BN => RELU, no weight decay, as in the book):

* conv module ``block1``: 96 3x3 filters, stride 1, "same";
* inception module: 1x1 conv module || 3x3 conv module, concatenated;
* downsample module: 3x3/2 "valid" conv module || 3x3/2 max-pool, concatenated.

Stages (see ``STAGES``)::

    block1                  conv 96 3x3
    2a, 2b, down2           inception (32,32) (32,48), downsample 80
    3a, 3b, 3c, 3d, down3   inception (112,48) (96,64) (80,80) (48,96), downsample 96
    4a, 4b                  inception (176,160) (176,160)
    avg_pool                7x7 average pool (global average pool if not 7x7)
    dropout 0.5, flatten, predictions (softmax, float32)

1,656,250 parameters at 32x32x3 with 10 classes (CIFAR-10, the book's setting).

Layer names: ``block1_{conv,bn,relu}``; inception ``{m}_{conv,bn,relu}_{1x1,3x3}``
and ``{m}_concat``; downsample ``down{s}_{conv,bn,relu}``, ``down{s}_pool``,
``down{s}_concat``; head ``avg_pool``, ``dropout``, ``flatten``, ``predictions``.

Feature layer: ``flatten`` (336-d), the output feeding ``predictions``.

Any input of at least 7x7 works (two "valid" 3x3/2 downsamples).
"""

from __future__ import annotations

from typing import NamedTuple

import keras
from keras import layers

from ._blocks import (
    average_pool,
    channel_axis,
    check_classes,
    check_input_shape,
    classifier,
    conv_module,
    model_input,
)
from .registry import register_model

INPUT_SIZE = 32
DEFAULT_CLASSES = 10
MIN_INPUT_SIZE = 7
FEATURE_LAYER = "flatten"


class Conv(NamedTuple):
    name: str
    filters: int
    kernel_size: int


class Inception(NamedTuple):
    name: str
    num_1x1: int
    num_3x3: int


class Downsample(NamedTuple):
    name: str
    filters: int


STAGES = (
    Conv("block1", 96, 3),
    Inception("2a", 32, 32),
    Inception("2b", 32, 48),
    Downsample("down2", 80),
    Inception("3a", 112, 48),
    Inception("3b", 96, 64),
    Inception("3c", 80, 80),
    Inception("3d", 48, 96),
    Downsample("down3", 96),
    Inception("4a", 176, 160),
    Inception("4b", 176, 160),
)


def _inception_module(x, spec: Inception):
    branch_1x1 = conv_module(x, spec.num_1x1, 1, name=spec.name, branch="1x1")
    branch_3x3 = conv_module(x, spec.num_3x3, 3, name=spec.name, branch="3x3")
    return layers.Concatenate(axis=channel_axis(), name=f"{spec.name}_concat")(
        [branch_1x1, branch_3x3]
    )


def _downsample_module(x, spec: Downsample):
    conv = conv_module(x, spec.filters, 3, strides=2, padding="valid", name=spec.name)
    pool = layers.MaxPooling2D(pool_size=3, strides=2, name=f"{spec.name}_pool")(x)
    return layers.Concatenate(axis=channel_axis(), name=f"{spec.name}_concat")([conv, pool])


def _build_minigooglenet(stages, input_shape, classes, *, dropout: float, name: str):
    shape = check_input_shape(input_shape, model=name, default=INPUT_SIZE, min_size=MIN_INPUT_SIZE)
    classes = check_classes(classes, model=name, default=DEFAULT_CLASSES)

    inputs = x = model_input(shape)
    for spec in stages:
        if isinstance(spec, Conv):
            x = conv_module(x, spec.filters, spec.kernel_size, name=spec.name)
        elif isinstance(spec, Inception):
            x = _inception_module(x, spec)
        elif isinstance(spec, Downsample):
            x = _downsample_module(x, spec)
        else:
            raise TypeError(f"{name}: unknown stage spec {spec!r}")

    x = average_pool(x, 7)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = classifier(x, classes)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    description="MiniGoogLeNet: 2-branch inception + downsample modules for small images (CIFAR)",
    input_size=INPUT_SIZE,
    default_classes=DEFAULT_CLASSES,
    feature_layer=FEATURE_LAYER,
    min_input_size=MIN_INPUT_SIZE,
)
def minigooglenet(
    input_shape: tuple[int, int, int] | None = None,
    classes: int | None = None,
    *,
    dropout: float = 0.5,
    name: str = "minigooglenet",
) -> keras.Model:
    """MiniGoogLeNet; ``input_shape`` None -> 32x32x3, ``classes`` None -> 10."""
    return _build_minigooglenet(STAGES, input_shape, classes, dropout=dropout, name=name)
