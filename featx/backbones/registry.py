"""The feature backbones, keyed by name: a :class:`featx.registry.Registry` of :class:`BackboneInfo`.

Each registered backbone is a small function ``fn(weights, input_shape) -> (model, preprocess)``
decorated with :func:`register_backbone`, which records its :class:`BackboneInfo` (feature
dimension, default input size, preprocessing). Registration imports nothing heavy: Keras is imported
only when a backbone is built, so ``featx models`` and every ``--help`` stay fast.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from featx.registry import Registry

#: Prefix of the ``keras:PATH[:LAYER]`` spec (a saved Keras model cut at a layer).
KERAS_PREFIX = "keras:"
#: Prefix of the ``hub:PRESET`` spec (a KerasHub preset: built-in name, kaggle:// or hf:// handle, folder).
HUB_PREFIX = "hub:"
#: The backbone used when none is named (``featx extract``, the demo).
DEFAULT_BACKBONE = "resnet50"


@dataclasses.dataclass(frozen=True)
class BackboneInfo:
    """What featx knows about a registered backbone before building it.

    Attributes:
        name: registry key (``--backbone NAME``).
        dim: length of the feature vector.
        default_size: input side in pixels used when ``--image-size`` is not given.
        description: one line for ``featx models``.
        preprocessing: name of the input preprocessing recorded in feature files
            (``caffe``: BGR minus ImageNet means; ``tf``: scaled to [-1, 1]; ``none``: 0..255
            floats go in, the model rescales them itself).
        min_size: smallest input side the architecture accepts.
        blocks: a regular expression over the network's layer names whose first group names the
            block a layer belongs to (``featx finetune --unfreeze N`` trains the top N blocks), or
            None: blocks are then the layers that hold weights (:mod:`featx.backbones.blocks`).
        block_marks: ``"start"`` (a matching layer starts or continues its block: ResNet's
            ``conv4_block2_...``) or ``"end"`` (a matching layer closes its block: Inception's
            ``mixed7``).
        builder: the registered function (also reachable as ``BACKBONES.create(name, ...)``).
    """

    name: str
    dim: int
    default_size: int
    description: str
    preprocessing: str
    min_size: int = 32
    blocks: str | None = None
    block_marks: str = "start"
    builder: Callable | None = dataclasses.field(default=None, repr=False, compare=False)


#: The registry itself (registration order: :data:`DEFAULT_BACKBONE` first).
BACKBONES: Registry[BackboneInfo] = Registry(
    "backbone", order="registration",
    hint=f", {HUB_PREFIX}PRESET for a KerasHub preset or {KERAS_PREFIX}PATH[:LAYER] for a saved Keras model",
)


@dataclasses.dataclass(frozen=True)
class HubPresetInfo:
    """A KerasHub preset featx suggests in ``featx models`` (any other preset name works too).

    ``dim`` and ``default_size`` are the published architecture's (the size is the preset's image
    converter's); the preset itself is the authority: featx reads both from it when it builds one.
    """

    name: str
    family: str
    dim: int
    default_size: int
    description: str


#: The short curated list of ``hub:`` presets shown by ``featx models``.
HUB_PRESETS: tuple[HubPresetInfo, ...] = (
    HubPresetInfo("dinov2_small", "DINOV2Backbone", 384, 518,
                  "DINOv2 ViT-S/14, class token; 518px as shipped (--image-size 224: 5x fewer tokens)"),
    HubPresetInfo("dinov2_base", "DINOV2Backbone", 768, 518,
                  "DINOv2 ViT-B/14, class token; 518px as shipped (--image-size 224: 5x fewer tokens)"),
    HubPresetInfo("dinov3_vit_small_lvd1689m", "DINOV3Backbone", 384, 224,
                  "DINOv3 ViT-S/16 (LVD-1689M), class token"),
    HubPresetInfo("clip_vit_base_patch16", "CLIPBackbone", 512, 224,
                  "CLIP ViT-B/16 image embedding (projected class token)"),
    HubPresetInfo("siglip_base_patch16_224", "SigLIPBackbone", 768, 224,
                  "SigLIP B/16 image embedding (attention-pooled)"),
)


def register_backbone(
    *, dim: int, default_size: int, description: str, preprocessing: str, min_size: int = 32, name: str | None = None,
    blocks: str | None = None, block_marks: str = "start",
):
    """Decorator registering ``fn(weights, input_shape) -> (keras.Model, preprocess)`` under its name.

    ``weights`` is ``"imagenet"`` or ``None``; the model maps ``(N, S, S, 3)`` preprocessed floats
    to ``(N, dim)`` features; ``preprocess`` maps float32 RGB 0..255 batches to the model's input.
    ``blocks`` / ``block_marks``: how its layers group into blocks (see :class:`BackboneInfo`).
    Raises :class:`~featx.errors.RegistryError` if the name is taken.
    """
    if block_marks not in ("start", "end"):
        raise ValueError(f"block_marks must be 'start' or 'end'. Received: {block_marks!r}")

    def wrap(fn: Callable) -> Callable:
        info = BackboneInfo(
            name=Registry.key(name or fn.__name__),
            dim=int(dim),
            default_size=int(default_size),
            description=description,
            preprocessing=preprocessing,
            min_size=int(min_size),
            blocks=blocks,
            block_marks=block_marks,
            builder=fn,
        )
        return BACKBONES.register(info, fn)

    return wrap


def list_backbones() -> list[BackboneInfo]:
    """Every registered backbone, in registration order (``resnet50`` first)."""
    return BACKBONES.list_infos()


def backbone_names() -> list[str]:
    return BACKBONES.list_names()


def get_backbone_info(name: str) -> BackboneInfo:
    """The :class:`BackboneInfo` of a registered backbone; a one-line :class:`RegistryError` otherwise."""
    return BACKBONES.get_info(name)
