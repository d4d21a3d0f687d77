"""A backbone's layers grouped into blocks, bottom to top (``featx finetune --unfreeze N``).

Registered backbones name their blocks with a regular expression over layer names
(:class:`featx.backbones.registry.BackboneInfo` ``blocks``): ResNet50's 16 residual blocks
``conv2_block1`` ... ``conv5_block3``, VGG16's ``block1`` ... ``block5``, InceptionV3's
``mixed0`` ... ``mixed10``. Layers before the first match form the ``stem``; with
``block_marks="start"`` a layer that does not match joins the block above it in the list (a pad or
pool between blocks), with ``"end"`` it joins the block it precedes (the convolutions inside an
Inception module, closed by its ``mixedN`` concatenation). Layers after the last match join the
last block.

A backbone without a pattern (``keras:`` models, backbones registered without one) counts layers:
each layer that holds trainable weights is a block, BatchNorm layers excepted (they stay frozen whatever is
unfrozen).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

STEM = "stem"


@dataclass
class Block:
    name: str
    layers: list = field(default_factory=list)

    @property
    def weights(self) -> int:
        return int(sum(math.prod(w.shape) for layer in self.layers for w in layer.weights))


def _is_batchnorm(layer) -> bool:
    import keras

    return isinstance(layer, keras.layers.BatchNormalization)


def group_layers(layers, pattern: str | None, marks: str = "start") -> list[Block]:
    """``layers`` (in network order) grouped into blocks; see the module docstring."""
    layers = [layer for layer in layers if not _is_input(layer)]
    if pattern is None:
        return [Block(layer.name, [layer]) for layer in layers if layer.trainable_weights and not _is_batchnorm(layer)]
    rx = re.compile(pattern)
    blocks: list[Block] = []
    if marks == "start":
        for layer in layers:
            m = rx.match(layer.name)
            name = m.group(1) if m else (blocks[-1].name if blocks else STEM)
            if not blocks or blocks[-1].name != name:
                blocks.append(Block(name))
            blocks[-1].layers.append(layer)
        return blocks
    pending: list = []
    for layer in layers:
        pending.append(layer)
        m = rx.match(layer.name)
        if m:
            blocks.append(Block(m.group(1), pending))
            pending = []
    if pending:
        if blocks:
            blocks[-1].layers.extend(pending)
        else:
            blocks.append(Block(STEM, pending))
    return blocks


def _is_input(layer) -> bool:
    return type(layer).__name__ == "InputLayer"


def backbone_blocks(backbone) -> list[Block]:
    """The blocks of a built :class:`featx.backbones.Backbone`, bottom to top."""
    from featx.backbones.registry import BACKBONES, get_backbone_info

    name = backbone.settings.get("name", "")
    info = get_backbone_info(name) if name in BACKBONES else None
    pattern = info.blocks if info is not None else None
    return group_layers(backbone.model.layers, pattern, info.block_marks if info is not None else "start")


def describe_blocks(blocks: list[Block], limit: int = 4) -> str:
    """``"17 blocks (stem, conv2_block1, ..., conv5_block3)"`` for messages."""
    names = [b.name for b in blocks]
    shown = ", ".join(names) if len(names) <= 2 * limit else (
        ", ".join(names[:limit]) + ", ..., " + ", ".join(names[-limit:]))
    return f"{len(names)} blocks ({shown})"
