"""The GoogLeNet family, written once: stage specs and one builder.

A network is a :class:`GoogLeNet` table: a tuple of stages (:class:`Conv`, :class:`Pool`,
:class:`Inception`, :class:`Downsample`) plus its canonical input size and head. MiniGoogLeNet
and DeeperGoogLeNet are two such tables (``minigooglenet.py``, ``deepergooglenet.py``).

* :class:`Conv`: conv module CONV (with bias) => BN => RELU, "same", stride 1;
* :class:`Pool`: 3x3/2 "same" max-pool;
* :class:`Inception`: GoogLeNet's branches, concatenated; a zero count leaves its branch (or its
  1x1 reduce) out, so MiniGoogLeNet's two-branch module is ``inception2(name, n1x1, n3x3)``::

      1x1  ||  [1x1 reduce =>] 3x3  ||  [1x1 reduce =>] 5x5  ||  3x3/1 max-pool => 1x1 proj

* :class:`Downsample`: 3x3/2 "valid" conv module || 3x3/2 max-pool, concatenated.

Head: average pool (the book's ``avg_pool`` size when the map is exactly that size, global
average pool otherwise), dropout, flatten (the feature layer), softmax ``predictions`` (float32).

Layer names are deterministic: ``{stage}_{conv,bn,relu}`` for conv modules (with a
``_{branch}`` suffix inside inception modules: ``1x1``, ``3x3_reduce``, ``3x3``, ``5x5_reduce``,
``5x5``, ``pool_proj``), ``{stage}_pool`` and ``{stage}_concat`` inside modules, the stage name
for plain pools, and ``avg_pool``, ``dropout``, ``flatten``, ``predictions`` for the head.

Importing this module does not import Keras; :func:`build_googlenet` does.
"""

from __future__ import annotations

from typing import NamedTuple

#: The layer feeding ``predictions`` (where a trained model is cut to extract features).
FEATURE_LAYER = "flatten"


class Conv(NamedTuple):
    name: str
    filters: int
    kernel_size: int


class Pool(NamedTuple):
    name: str


class Inception(NamedTuple):
    """Filters per branch, in the book's order; 0 leaves a branch (or a reduce) out."""

    name: str
    num_1x1: int
    num_3x3_reduce: int
    num_3x3: int
    num_5x5_reduce: int = 0
    num_5x5: int = 0
    num_pool_proj: int = 0


class Downsample(NamedTuple):
    name: str
    filters: int


def inception2(name: str, num_1x1: int, num_3x3: int) -> Inception:
    """MiniGoogLeNet's inception module: 1x1 || 3x3, no reduce, no 5x5, no pool branch."""
    return Inception(name, num_1x1, 0, num_3x3)


class GoogLeNet(NamedTuple):
    """A whole network: its stages and what its head and defaults are.

    Attributes:
        stages: the body, in order.
        input_size: canonical square input side.
        default_classes: classes when the caller gives none.
        min_input_size: smallest input side the body accepts.
        avg_pool: the book's average-pool size (the last feature map at ``input_size``).
        dropout: default dropout rate before ``flatten``.
        reg: default L2 kernel penalty (None: no weight decay).
    """

    stages: tuple
    input_size: int
    default_classes: int
    min_input_size: int
    avg_pool: int
    dropout: float
    reg: float | None = None


def build_googlenet(net: GoogLeNet, input_shape, classes, *, name: str, reg=None, dropout=None):
    """Build ``net`` as a ``keras.Model`` named ``name``.

    ``input_shape`` None -> the canonical size; ``classes`` None -> ``net.default_classes``;
    ``reg`` / ``dropout`` None -> the table's. Raises ``ValueError`` (naming the parameter) for a
    malformed or too small ``input_shape`` or bad ``classes``.
    """
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

    reg = net.reg if reg is None else reg
    dropout = net.dropout if dropout is None else dropout
    shape = check_input_shape(input_shape, model=name, default=net.input_size, min_size=net.min_input_size)
    classes = check_classes(classes, model=name, default=net.default_classes)

    def concat(tensors, stage):
        return layers.Concatenate(axis=channel_axis(), name=f"{stage}_concat")(tensors)

    def inception(x, s: Inception):
        def conv(t, filters, kernel, branch):
            return conv_module(t, filters, kernel, name=s.name, branch=branch, reg=reg)

        branches = [conv(x, s.num_1x1, 1, "1x1")]
        for size, reduce, filters in (("3x3", s.num_3x3_reduce, s.num_3x3), ("5x5", s.num_5x5_reduce, s.num_5x5)):
            if filters:
                t = conv(x, reduce, 1, f"{size}_reduce") if reduce else x
                branches.append(conv(t, filters, int(size[0]), size))
        if s.num_pool_proj:
            t = layers.MaxPooling2D(pool_size=3, strides=1, padding="same", name=f"{s.name}_pool")(x)
            branches.append(conv(t, s.num_pool_proj, 1, "pool_proj"))
        return concat(branches, s.name)

    def downsample(x, s: Downsample):
        conv = conv_module(x, s.filters, 3, strides=2, padding="valid", name=s.name, reg=reg)
        pool = layers.MaxPooling2D(pool_size=3, strides=2, name=f"{s.name}_pool")(x)
        return concat([conv, pool], s.name)

    inputs = x = model_input(shape)
    for stage in net.stages:
        if isinstance(stage, Conv):
            x = conv_module(x, stage.filters, stage.kernel_size, name=stage.name, reg=reg)
        elif isinstance(stage, Pool):
            x = layers.MaxPooling2D(pool_size=3, strides=2, padding="same", name=stage.name)(x)
        elif isinstance(stage, Inception):
            x = inception(x, stage)
        elif isinstance(stage, Downsample):
            x = downsample(x, stage)
        else:
            raise TypeError(f"{name}: unknown stage {stage!r}")

    x = average_pool(x, net.avg_pool)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Flatten(name=FEATURE_LAYER)(x)
    outputs = classifier(x, classes, reg=reg)
    return keras.Model(inputs, outputs, name=name)
