"""Feature backbones: a registry of ``keras.applications`` networks, KerasHub presets (``hub:``) and saved Keras models.

::

    from featx.backbones import build_backbone, list_backbones

    bb = build_backbone("resnet50", weights="imagenet")     # 2048-d, 224px, caffe preprocessing
    bb = build_backbone("keras:runs/mini/model.keras")        # cut before the final Dense
    bb = build_backbone("hub:dinov2_small", image_size=224)   # KerasHub preset, class token
    feats = bb(images_uint8)                                  # (N, bb.dim) float32
    bb.settings  # {'name': 'resnet50', 'weights': 'imagenet', 'image_size': 224, ...}

Importing this package is cheap; Keras/TensorFlow load when a backbone is built.
"""

from featx.backbones import applications  # noqa: E402,F401,I001 - registers the built-in backbones
from featx.backbones.registry import (
    BACKBONES,
    DEFAULT_BACKBONE,
    HUB_PREFIX,
    HUB_PRESETS,
    KERAS_PREFIX,
    BackboneInfo,
    HubPresetInfo,
    backbone_names,
    get_backbone_info,
    list_backbones,
    register_backbone,
)

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "HUB_PREFIX",
    "HUB_PRESETS",
    "KERAS_PREFIX",
    "Backbone",
    "BackboneInfo",
    "HubPresetInfo",
    "backbone_from_settings",
    "backbone_names",
    "build_backbone",
    "get_backbone_info",
    "list_backbones",
    "register_backbone",
]


def __getattr__(name):  # lazy: importing featx.backbones must not import numpy-heavy builders
    if name in ("Backbone", "build_backbone", "backbone_from_settings"):
        from featx.backbones import backbone

        return getattr(backbone, name)
    raise AttributeError(f"module 'featx.backbones' has no attribute {name!r}")
