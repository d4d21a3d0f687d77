"""MiniGoogLeNet as in "Deep Learning for Computer Vision with Python", Practitioner Bundle.

A stage table for the GoogLeNet builder (``_googlenet.py``). Conv modules are CONV => BN => RELU,
no weight decay, as in the book; the inception module is 1x1 || 3x3 (``inception2``); the
downsample module is a 3x3/2 "valid" conv module || a 3x3/2 max-pool::

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

from ._googlenet import FEATURE_LAYER, Conv, Downsample, GoogLeNet, build_googlenet, inception2
from .registry import register_model

MINIGOOGLENET = GoogLeNet(
    stages=(
        Conv("block1", 96, 3),
        inception2("2a", 32, 32),
        inception2("2b", 32, 48),
        Downsample("down2", 80),
        inception2("3a", 112, 48),
        inception2("3b", 96, 64),
        inception2("3c", 80, 80),
        inception2("3d", 48, 96),
        Downsample("down3", 96),
        inception2("4a", 176, 160),
        inception2("4b", 176, 160),
    ),
    input_size=32,
    default_classes=10,
    min_input_size=7,
    avg_pool=7,
    dropout=0.5,
)
STAGES = MINIGOOGLENET.stages


@register_model(
    description="MiniGoogLeNet: 2-branch inception + downsample modules for small images (CIFAR)",
    input_size=MINIGOOGLENET.input_size,
    default_classes=MINIGOOGLENET.default_classes,
    feature_layer=FEATURE_LAYER,
    min_input_size=MINIGOOGLENET.min_input_size,
    feature_dim=336,
    params=1_656_250,
)
def minigooglenet(
    input_shape: tuple[int, int, int] | None = None,
    classes: int | None = None,
    *,
    dropout: float = MINIGOOGLENET.dropout,
    name: str = "minigooglenet",
):
    """MiniGoogLeNet; ``input_shape`` None -> 32x32x3, ``classes`` None -> 10."""
    return build_googlenet(MINIGOOGLENET, input_shape, classes, dropout=dropout, name=name)
