"""``ExtractConfig``: the parameters of ``featx extract``, validated once.

Construction checks every value and normalises ``weights`` once (``"imagenet"``, ``"none"`` or an
absolute file path; ``"embedded"`` for a ``keras:PATH`` backbone, ``"preset"`` or ``"none"`` for
``hub:PRESET``). For a registered backbone the
recorded settings (feature dimension included) come from the registry without building the model,
so a rerun over a finished output is answered without loading TensorFlow or the backbone.
"""

from __future__ import annotations

import dataclasses

from featx.backbones.registry import DEFAULT_BACKBONE
from featx.constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_EXTRACT_BATCH_SIZE,
    DEFAULT_WEIGHTS,
    ENGINES,
)
from featx.errors import FeatxError

__all__ = ["ENGINES", "ExtractConfig"]


@dataclasses.dataclass
class ExtractConfig:
    """How to extract. ``None`` for ``mixed_precision``/``xla`` means: on with a GPU
    (:func:`featx.runtime.accel.resolve_accel`); ``workers`` (Ray engine) defaults to one per GPU, or 1 on
    a CPU; ``shard_rows`` defaults to a few minutes of work per shard (sharded runs only)."""

    backbone: str = DEFAULT_BACKBONE
    weights: str | None = DEFAULT_WEIGHTS
    image_size: int | None = None
    batch_size: int = DEFAULT_EXTRACT_BATCH_SIZE
    resize: str = "aspect"
    mixed_precision: bool | None = None
    xla: bool | None = None
    decoder: str = "auto"
    engine: str = "local"
    address: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # seconds an --address may take to answer
    workers: int | None = None
    shard_rows: int | None = None
    slab_rows: int | None = None
    max_pixels: int | None = None  # images declaring more pixels are skipped, never decoded

    def __post_init__(self):
        from featx.data.decode import check_resize
        from featx.extract.reader import DECODERS

        if int(self.batch_size) < 1:
            raise FeatxError(f"batch_size must be >= 1. Received: batch_size={self.batch_size}")
        self.batch_size = int(self.batch_size)
        check_resize(self.resize)
        if self.decoder not in DECODERS:
            raise FeatxError(f"decoder must be one of {', '.join(DECODERS)}. Received: decoder={self.decoder!r}")
        from featx.extract.reader import resolve_decoder

        resolve_decoder(self.decoder)  # tfdata/pool under JAX or PyTorch: one line naming TensorFlow
        if self.engine not in ENGINES:
            raise FeatxError(f"engine must be one of {', '.join(ENGINES)}. Received: engine={self.engine!r}")
        for name in ("workers", "shard_rows", "slab_rows", "max_pixels"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise FeatxError(f"{name} must be >= 1. Received: {name}={v}")
        if not float(self.connect_timeout) > 0:
            raise FeatxError(f"connect_timeout must be > 0 seconds. Received: connect_timeout={self.connect_timeout}")
        if self.address is not None and self.engine != "ray":
            raise FeatxError(f"address applies to engine='ray'. Received: address={self.address!r}, engine={self.engine!r}")
        self.backbone = str(self.backbone).strip()
        if self.is_saved_model:
            from featx.backbones.saved import EMBEDDED
            from featx.backbones.weights import IMAGENET, NONE

            if self.weights not in (None, IMAGENET, NONE, EMBEDDED):
                raise FeatxError(
                    f"a keras: backbone uses the weights saved in its model file; drop --weights. Received: {self.weights!r}"
                )
            self.weights = EMBEDDED
            self._settings = None  # known once the model file is loaded
        elif self.is_hub:
            from featx.backbones.hub import hub_weights

            self.weights = hub_weights(self.weights)
            self._settings = None  # known once the preset is loaded
        else:
            from featx.backbones.backbone import backbone_settings

            self._settings = backbone_settings(self.backbone, self.weights, self.image_size)
            self.weights = self._settings["weights"]
            self.image_size = self._settings["image_size"]

    @property
    def is_saved_model(self) -> bool:
        from featx.backbones.registry import KERAS_PREFIX

        return self.backbone.lower().startswith(KERAS_PREFIX)

    @property
    def is_hub(self) -> bool:
        from featx.backbones.hub import is_hub_spec

        return is_hub_spec(self.backbone)

    def backbone_settings(self, source_kind: str) -> tuple[dict, object | None]:
        """``(settings, built backbone or None)`` for a source of ``source_kind``.

        The settings are what the features file records (``resize`` is ``"stored"`` for an images
        HDF5, whose rows were resized by ``featx build``). A ``keras:PATH`` backbone is built here
        (its layer and dimension live in the file), and returned so it is not built twice.
        """
        resize = self.resize if source_kind == "folder" else "stored"
        if self._settings is not None:
            return {**self._settings, "resize": resize}, None
        if self.is_hub:  # built here (its dimension, size and normalization live in the preset), once
            from featx.backbones.hub import build_hub
            from featx.runtime.accel import resolve_accel

            mixed = resolve_accel(self.mixed_precision, self.xla).mixed_precision
            bb = build_hub(self.backbone, weights=self.weights, image_size=self.image_size, mixed_precision=mixed)
            return {**bb.settings, "resize": resize}, bb
        from featx.backbones.saved import build_saved

        bb = build_saved(self.backbone, image_size=self.image_size)
        return {**bb.settings, "resize": resize}, bb
