"""Data augmentation with Keras preprocessing layers (flip, rotation, zoom, shift), as presets.

Presets (``featx train --augment``):

* ``none`` (the default): nothing; the random patch crop of stored images larger than the input
  still applies, and on short runs that is enough (measured: README, "Short-budget quality");
* ``light``: small shifts (+/- 1/16 of the side) and horizontal flips;
* ``book``: the book's ``ImageDataGenerator`` settings for the AlexNet / GoogLeNet chapters
  (rotation 20 degrees, zoom 0.15, shifts 0.1 of the side, horizontal flips).

Each setting can be overridden (e.g. ``Augment.preset("light", flip=False)`` for digits, which
are not mirror-symmetric). The layers are applied per image inside the ``tf.data`` map, on the
CPU, before batches reach the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from featx.errors import ParameterError

#: preset name -> settings (flip, rotation degrees, zoom fraction, shift fraction)
PRESETS = {
    "none": {"flip": False, "rotation": 0.0, "zoom": 0.0, "shift": 0.0},
    "light": {"flip": True, "rotation": 0.0, "zoom": 0.0, "shift": 0.0625},
    "book": {"flip": True, "rotation": 20.0, "zoom": 0.15, "shift": 0.1},
}
#: the preset ``featx train`` uses unless told otherwise, chosen by measurement: 8 epochs of
#: MiniGoogLeNet on ~1,080 digits at 32 px scored 0.92 test rank-1 with ``none``, 0.81 with
#: ``light`` and less with ``book`` (README, "Short-budget quality"); longer runs want ``book``
DEFAULT_PRESET = "none"


@dataclass(frozen=True)
class Augment:
    """Augmentation settings; ``enabled=False`` turns all of it off. ``preset`` records where the
    settings came from (``"custom"`` when built field by field)."""

    enabled: bool = True
    flip: bool = True
    rotation: float = 20.0  # degrees, +/-
    zoom: float = 0.15  # fraction, +/-
    shift: float = 0.1  # fraction of height/width, +/-
    preset: str = "custom"

    def __post_init__(self):
        for name in ("rotation", "zoom", "shift"):
            if getattr(self, name) < 0:
                raise ParameterError(name, f"augmentation {name} must be >= 0. Received: {getattr(self, name)}")
        if self.rotation >= 180:
            raise ParameterError("rotation", f"augmentation rotation is in degrees, < 180. Received: {self.rotation}")
        for name in ("zoom", "shift"):
            if getattr(self, name) >= 1:
                raise ParameterError(name, f"augmentation zoom and shift are fractions < 1. Received: {name}={getattr(self, name)}")

    @classmethod
    def preset_named(cls, name: str, **overrides) -> Augment:
        """The settings of preset ``name`` (see :data:`PRESETS`), with ``overrides`` (None: keep)."""
        if name not in PRESETS:
            raise ParameterError("augment", f"augment must be one of {', '.join(PRESETS)}. Received: {name!r}")
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - set(PRESETS[name])
        if unknown:
            raise ParameterError(sorted(unknown)[0], f"unknown augmentation setting(s): {', '.join(sorted(unknown))}")
        aug = cls(**PRESETS[name], preset=name)
        return replace(aug, **given) if given else aug

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
