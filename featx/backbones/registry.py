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
        builder: the registered function (also reachable as ``BACKBONES.create(name, ...)``).
    """

    name: str
    dim: int
    default_size: int
    description: str
    preprocessing: str
    min_size: int = 32
    builder: Callable | None = dataclasses.field(default=None, repr=False, compare=False)


#: The registry itself (registration order: :data:`DEFAULT_BACKBONE` first).
BACKBONES: Registry[BackboneInfo] = Registry(
    "backbone", order="registration", hint=f" or {KERAS_PREFIX}PATH[:LAYER] for a saved Keras model"
)


def register_backbone(
    *, dim: int, default_size: int, description: str, preprocessing: str, min_size: int = 32, name: str | None = None
):
    """Decorator registering ``fn(weights, input_shape) -> (keras.Model, preprocess)`` under its name.

    ``weights`` is ``"imagenet"`` or ``None``; the model maps ``(N, S, S, 3)`` preprocessed floats
    to ``(N, dim)`` features; ``preprocess`` maps float32 RGB 0..255 batches to the model's input.
    Raises :class:`~featx.errors.RegistryError` if the name is taken.
    """

    def wrap(fn: Callable) -> Callable:
        info = BackboneInfo(
            name=Registry.key(name or fn.__name__),
            dim=int(dim),
            default_size=int(default_size),
            description=description,
            preprocessing=preprocessing,
            min_size=int(min_size),
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
