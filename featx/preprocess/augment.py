"""Data augmentation with Keras preprocessing layers (flip, rotation, zoom, shift).

The defaults follow the book's ``ImageDataGenerator`` settings for the AlexNet / GoogLeNet
chapters (rotation 20 degrees, zoom 0.15, shifts 0.1 of the side, horizontal flips). The layers
are applied per image inside the ``tf.data`` map, on the CPU, before batches reach the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Augment:
    """Augmentation settings; ``enabled=False`` (``--no-augment``) turns all of it off."""

    enabled: bool = True
    flip: bool = True
    rotation: float = 20.0  # degrees, +/-
    zoom: float = 0.15  # fraction, +/-
    shift: float = 0.1  # fraction of height/width, +/-

    def __post_init__(self):
        for name in ("rotation", "zoom", "shift"):
            if getattr(self, name) < 0:
                raise ValueError(f"augmentation {name} must be >= 0. Received: {getattr(self, name)}")
        if self.rotation >= 180:
            raise ValueError(f"augmentation rotation is in degrees, < 180. Received: {self.rotation}")
        if self.zoom >= 1 or self.shift >= 1:
            raise ValueError(f"augmentation zoom and shift are fractions < 1. Received: {self.zoom}, {self.shift}")

    @property
    def active(self) -> bool:
        return self.enabled and (self.flip or self.rotation > 0 or self.zoom > 0 or self.shift > 0)

    def to_dict(self) -> dict:
        return asdict(self)


def augmentation_layers(cfg: Augment, seed: int | None = None):
    """A ``keras.Sequential`` of preprocessing layers for ``cfg``, or None when nothing is on."""
    if not cfg.active:
        return None
    import keras

    layers = []

    def s(i):
        return None if seed is None else seed + i

    if cfg.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=s(0), name="flip"))
    if cfg.rotation > 0:
        layers.append(keras.layers.RandomRotation(cfg.rotation / 360.0, fill_mode="reflect", seed=s(1), name="rotation"))
    if cfg.zoom > 0:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="reflect", seed=s(2), name="zoom"))
    if cfg.shift > 0:
        layers.append(keras.layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode="reflect", seed=s(3), name="shift"))
    return keras.Sequential(layers, name="augmentation")
