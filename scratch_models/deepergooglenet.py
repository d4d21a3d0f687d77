"""DeeperGoogLeNet as in "Deep Learning for Computer Vision with Python", Practitioner
Bundle (Tiny ImageNet chapter).

A stage table for the GoogLeNet builder (``_googlenet.py``). Conv modules are CONV (with bias)
=> BN => RELU with an L2 kernel penalty ``reg``; the inception module is GoogLeNet's four
branches::

    1x1  ||  1x1 reduce => 3x3  ||  1x1 reduce => 5x5  ||  3x3/1 max-pool => 1x1 proj

Stages (every max-pool is 3x3/2 "same")::

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

from ._googlenet import FEATURE_LAYER, Conv, GoogLeNet, Inception, Pool, build_googlenet
from .registry import register_model

DEEPERGOOGLENET = GoogLeNet(
    stages=(
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
    ),
    input_size=64,
    default_classes=200,
    min_input_size=1,
    avg_pool=4,
    dropout=0.4,
    reg=5e-4,
)
STAGES = DEEPERGOOGLENET.stages


@register_model(
    description="DeeperGoogLeNet: GoogLeNet-style 4-branch inception stages 3a-4e for Tiny ImageNet",
    input_size=DEEPERGOOGLENET.input_size,
    default_classes=DEEPERGOOGLENET.default_classes,
    feature_layer=FEATURE_LAYER,
    min_input_size=DEEPERGOOGLENET.min_input_size,
    feature_dim=832,
    params=3_667_976,
)
def deepergooglenet(
    input_shape: tuple[int, int, int] | None = None,
    classes: int | None = None,
    *,
    reg: float = DEEPERGOOGLENET.reg,
    dropout: float = DEEPERGOOGLENET.dropout,
    name: str = "deepergooglenet",
):
    """DeeperGoogLeNet; ``input_shape`` None -> 64x64x3, ``classes`` None -> 200."""
    return build_googlenet(DEEPERGOOGLENET, input_shape, classes, reg=reg, dropout=dropout, name=name)
