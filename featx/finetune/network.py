"""The fine-tuned network: pixels -> backbone -> Dense softmax head, and which layers train.

::

    pixels (C x C, RGB 0..255) -> [Resizing to S] -> preprocessing -> backbone (pooled) -> [Dropout] -> head

The first steps are :func:`featx.backbones.layers.pixel_network` (the extractor's own resize and
preprocessing as Keras layers, so the features equal ``featx extract``'s on the same images); the
head is ``Dense(classes, softmax)`` in float32, started from a ``featx fit`` classifier with
:func:`featx.fit.dense_head` (LP-FT) or from Keras' default init.

BatchNorm: Keras 3 overrides a nested ``backbone(x, training=False)`` with ``training=True`` during
``fit`` (keras-team/keras#20285), so that alone would let batch statistics through and update the
moving averages. Every BatchNorm layer of the backbone is set ``trainable = False`` instead, which
Keras' BatchNormalization reads as "inference mode": moving statistics are used and never updated,
and gamma/beta do not train, in both phases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from featx.backbones.layers import batchnorm_layers
from featx.errors import ParameterError

HEAD_LAYER = "head"
DROPOUT_LAYER = "head_dropout"


@dataclass
class Network:
    """The Keras model and its parts (``base``: the backbone model, a layer of ``model``)."""

    model: object
    base: object
    head: object
    blocks: list = field(default_factory=list)

    def params(self) -> tuple[int, int]:
        """(all parameters, trainable parameters) as Keras counts them now."""
        import math

        trainable = sum(math.prod(w.shape) for w in self.model.trainable_weights)
        return int(self.model.count_params()), int(trainable)




def build_network(backbone, classes: int, *, input_size: int | None = None, dropout: float = 0.0,
                  head: tuple | None = None, name: str | None = None) -> Network:
    """The network of the module docstring; ``head`` is ``(kernel, bias)`` or None (random init)."""
    import keras

    from featx.backbones.blocks import backbone_blocks
    from featx.backbones.layers import pixel_network

    blocks = backbone_blocks(backbone)  # before any freezing: "layers with trainable weights" is still visible
    features = pixel_network(backbone, input_size)
    x = features.outputs[0]
    if dropout:
        x = keras.layers.Dropout(dropout, name=DROPOUT_LAYER)(x)
    dense = keras.layers.Dense(classes, activation="softmax", dtype="float32", name=HEAD_LAYER)
    outputs = dense(x)
    if head is not None:
        kernel, bias = head
        if tuple(kernel.shape) != tuple(dense.kernel.shape):
            raise ParameterError("head", f"the classifier's head is {kernel.shape}, this network needs {tuple(dense.kernel.shape)}")
        dense.set_weights([kernel, bias])
    model = keras.Model(features.inputs[0], outputs, name=name or f"finetuned_{backbone.model.name}")
    return Network(model, backbone.model, dense, blocks)


def set_phase(net: Network, phase: str, unfreeze="all") -> dict:
    """Make the layers of ``phase`` trainable: ``"head"`` (backbone frozen) or ``"finetune"`` (the
    top ``unfreeze`` blocks, or all). BatchNorm stays frozen. Recompile the model afterwards."""
    from featx.backbones.blocks import describe_blocks

    base = net.base
    if phase == "head":
        base.trainable = False
        return {"unfrozen_blocks": []}
    base.trainable = True
    names = [b.name for b in net.blocks]
    if unfreeze != "all":
        n = int(unfreeze)
        if n > len(net.blocks):
            raise ParameterError("unfreeze", f"unfreeze {n} is more than the backbone has: {describe_blocks(net.blocks)}")
        for block in net.blocks[: len(net.blocks) - n]:
            for layer in block.layers:
                layer.trainable = False
        names = names[len(names) - n:]
    for layer in batchnorm_layers(base):
        layer.trainable = False
    return {"unfrozen_blocks": names}
