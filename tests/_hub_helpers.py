"""Tiny KerasHub presets (a few thousand parameters, no download) for the ``hub:`` tests.

Each family's backbone class is built from a small config with random weights and saved as a
preset folder with ``save_to_preset`` (``config.json``, ``model.weights.h5``, ``metadata.json``)
plus its image converter (``image_converter.json``): ``hub:FOLDER`` then goes through the same
``keras_hub.models.Backbone.from_preset`` path as a downloaded preset.
"""

from __future__ import annotations

from pathlib import Path

TINY_HUB_SIZE = 32
FAMILIES = ("dinov2", "dinov3", "clip", "siglip")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _converter(kh, family: str):
    size = (TINY_HUB_SIZE, TINY_HUB_SIZE)
    if family == "siglip":
        return kh.layers.SigLIPImageConverter(image_size=size, scale=1 / 127.5, offset=-1.0)
    if family == "clip":
        mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
        cls = kh.layers.CLIPImageConverter
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        cls = kh.layers.DINOV2ImageConverter if family == "dinov2" else kh.layers.DINOV3ImageConverter
    return cls(image_size=size, scale=[1 / 255 / s for s in std], offset=[-m / s for m, s in zip(mean, std)])


def tiny_backbone(family: str):
    import keras
    import keras_hub as kh

    keras.utils.set_random_seed(3)
    s = TINY_HUB_SIZE
    if family == "dinov2":
        return kh.models.DINOV2Backbone(patch_size=8, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32,
                                        image_shape=(s, s, 3), position_embedding_shape=(s, s, 3))
    if family == "dinov3":
        return kh.models.DINOV3Backbone(patch_size=8, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32,
                                        num_register_tokens=2, image_shape=(s, s, 3))
    if family == "clip":
        from keras_hub.src.models.clip.clip_text_encoder import CLIPTextEncoder
        from keras_hub.src.models.clip.clip_vision_encoder import CLIPVisionEncoder

        vision = CLIPVisionEncoder(patch_size=8, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
                                   image_shape=(s, s, 3))
        text = CLIPTextEncoder(vocabulary_size=20, embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2,
                               intermediate_dim=32, max_sequence_length=8)
        return kh.models.CLIPBackbone(vision_encoder=vision, text_encoder=text, projection_dim=12)
    if family == "siglip":
        from keras_hub.src.models.siglip.siglip_text_encoder import SigLIPTextEncoder
        from keras_hub.src.models.siglip.siglip_vision_encoder import SigLIPVisionEncoder

        vision = SigLIPVisionEncoder(patch_size=8, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
                                     image_shape=(s, s, 3))
        text = SigLIPTextEncoder(vocabulary_size=20, embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2,
                                 intermediate_dim=32, max_sequence_length=8)
        return kh.models.SigLIPBackbone(vision_encoder=vision, text_encoder=text)
    raise ValueError(family)


def save_tiny_preset(folder: Path, family: str) -> Path:
    """Save the tiny ``family`` backbone and its image converter as a KerasHub preset folder."""
    import keras_hub as kh

    folder = Path(folder)
    tiny_backbone(family).save_to_preset(str(folder))
    _converter(kh, family).save_to_preset(str(folder))
    return folder


def reference_pooled(folder: Path, family: str, images):
    """The pooled vectors computed with KerasHub directly (no featx code): the oracle."""
    import keras_hub as kh
    import numpy as np

    bb = kh.models.Backbone.from_preset(str(folder))
    conv = kh.layers.ImageConverter.from_preset(str(folder))
    x = np.asarray(conv(images.astype("float32")))
    if family in ("clip", "siglip"):
        return np.asarray(bb.get_vision_embeddings(x))
    key = "pixel_values" if family == "dinov3" else "images"
    return np.asarray(bb({key: x}))[:, 0, :]
