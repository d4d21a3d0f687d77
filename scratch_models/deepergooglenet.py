"""DeeperGoogLeNet as in "Deep Learning for Computer Vision with Python", Practitioner
Bundle (Tiny ImageNet chapter).

Conv modules are CONV (with bias) => BN => RELU with an L2 kernel penalty
``reg``; the inception module is GoogLeNet's four branches::

    1x1  ||  1x1 reduce => 3x3  ||  1x1 reduce => 5x5  ||  3x3/1 max-pool => 1x1 proj

Stages (see ``STAGES``; every max-pool is 3x3/2 "same")::

    block1 conv 64 5x5, pool1, block2 conv 64 1x1, block3 conv 192 3x3, pool2
    3a (64,96,128,16,32,32), 3b (128,128,192,32,96,64), pool3
    4a (192,96,208,16,48,64), 4b (160,112,224,24,64,64), 4c (128,128,256,24,64,64),
    4d (112,144,288,32,64,64), 4e (256,160,320,32,128,128), pool4
    avg_pool 4x4 (global average pool if not 4x4), dropout 0.4, flatten,
    predictions (softmax, float32, L2)

3,667,976 parameters at 64x64x3 with 200 classes (Tiny ImageNet).  That count
is the book's exact architecture: conv biases kept, BN after every conv (its
moving mean/variance are counted by ``count_params``), no bias/BN removed.
``reg`` defaults to 5e-4, the book's ``DeeperGoogLeNet.build`` default (its
Tiny ImageNet training script passes 2e-4); it does not change the count.

Layer names: ``block{1,2,3}_{conv,bn,relu}``, ``pool{1..4}``; inception
``{m}_{conv,bn,relu}_{1x1,3x3_reduce,3x3,5x5_reduce,5x5,pool_proj}``,
``{m}_pool``, ``{m}_concat``; head ``avg_pool``, ``dropout``, ``flatten``,
``predictions``.

Feature layer: ``flatten`` (832-d), the output feeding ``predictions``.

All convs and pools use "same" padding, so any input size works.
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

INPUT_SIZE = 64
DEFAULT_CLASSES = 200
MIN_INPUT_SIZE = 1
FEATURE_LAYER = "flatten"


class Conv(NamedTuple):
    name: str
    filters: int
    kernel_size: int


class Pool(NamedTuple):
    name: str


class Inception(NamedTuple):
    name: str
    num_1x1: int
    num_3x3_reduce: int
    num_3x3: int
    num_5x5_reduce: int
    num_5x5: int
    num_pool_proj: int


STAGES = (
    Conv("block1", 64, 5),
    Pool("pool1"),
    Conv("block2", 64, 1),
    Conv("block3", 192, 3),
    Pool("pool2"),
    Inception("3a", 64, 96, 128, 16, 32, 32),
    Inception("3b", 128, 128, 192, 32, 96, 64),
    Pool("pool3"),
    Inception("4a", 192, 96, 208, 16, 48, 64),
    Inception("4b", 160, 112, 224, 24, 64, 64),
    Inception("4c", 128, 128, 256, 24, 64, 64),
    Inception("4d", 112, 144, 288, 32, 64, 64),
    Inception("4e", 256, 160, 320, 32, 128, 128),
    Pool("pool4"),
)


def _inception_module(x, spec: Inception, *, reg: float):
    m = spec.name
    first = conv_module(x, spec.num_1x1, 1, name=m, branch="1x1", reg=reg)
    second = conv_module(x, spec.num_3x3_reduce, 1, name=m, branch="3x3_reduce", reg=reg)
    second = conv_module(second, spec.num_3x3, 3, name=m, branch="3x3", reg=reg)
    third = conv_module(x, spec.num_5x5_reduce, 1, name=m, branch="5x5_reduce", reg=reg)
    third = conv_module(third, spec.num_5x5, 5, name=m, branch="5x5", reg=reg)
    fourth = layers.MaxPooling2D(pool_size=3, strides=1, padding="same", name=f"{m}_pool")(x)
    fourth = conv_module(fourth, spec.num_pool_proj, 1, name=m, branch="pool_proj", reg=reg)
    return layers.Concatenate(axis=channel_axis(), name=f"{m}_concat")(
        [first, second, third, fourth]
    )


def _build_deepergooglenet(stages, input_shape, classes, *, reg: float, dropout: float, name: str):
    shape = check_input_shape(input_shape, model=name, default=INPUT_SIZE, min_size=MIN_INPUT_SIZE)
    classes = check_classes(classes, model=name, default=DEFAULT_CLASSES)

    inputs = x = model_input(shape)
    for spec in stages:
        if isinstance(spec, Conv):
            x = conv_module(x, spec.filters, spec.kernel_size, name=spec.name, reg=reg)
        elif isinstance(spec, Pool):
            x = layers.MaxPooling2D(pool_size=3, strides=2, padding="same", name=spec.name)(x)
        elif isinstance(spec, Inception):
            x = _inception_module(x, spec, reg=reg)
        else:
            raise TypeError(f"{name}: unknown stage spec {spec!r}")

    x = average_pool(x, 4)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = classifier(x, classes, reg=reg)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    description="DeeperGoogLeNet: GoogLeNet-style 4-branch inception stages 3a-4e for Tiny ImageNet",
    input_size=INPUT_SIZE,
    default_classes=DEFAULT_CLASSES,
    feature_layer=FEATURE_LAYER,
    min_input_size=MIN_INPUT_SIZE,
)
def deepergooglenet(
    input_shape: tuple[int, int, int] | None = None,
    classes: int | None = None,
    *,
    reg: float = 5e-4,
    dropout: float = 0.4,
    name: str = "deepergooglenet",
) -> keras.Model:
    """DeeperGoogLeNet; ``input_shape`` None -> 64x64x3, ``classes`` None -> 200."""
    return _build_deepergooglenet(STAGES, input_shape, classes, reg=reg, dropout=dropout, name=name)
