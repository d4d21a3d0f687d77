"""Build a backbone by name (or ``keras:PATH[:LAYER]``) and run it as a compiled function.

:func:`build_backbone` returns a :class:`Backbone`: the Keras model, its preprocessing, the feature
dimension, the input size and a ``settings`` dict that feature files and classifier manifests record
(so ``featx predict`` can rebuild exactly the same extractor with :func:`backbone_from_settings`).
"""

from __future__ import annotations

import contextlib

from featx.backbones import applications  # noqa: F401 - registers the keras.applications backbones
from featx.backbones.base import Backbone
from featx.backbones.registry import (
    BACKBONES,
    DEFAULT_BACKBONE,
    HUB_PREFIX,
    KERAS_PREFIX,
    get_backbone_info,
)
from featx.backbones.weights import (
    IMAGENET,
    NONE,
    RANDOM_SEED,
    is_download_error,
    offline_error,
    quiet_failed_download,
    resolve_weights,
    seeded,
    sha256_file,
)
from featx.errors import FeatxError


@contextlib.contextmanager
def precision_policy(mixed: bool | str):
    """Build layers under ``mixed_float16`` when ``mixed`` is true, or under the Keras dtype policy
    ``mixed`` names (``"mixed_bfloat16"``: :attr:`featx.runtime.accel.Accel.policy`); the previous
    global policy is restored."""
    if not mixed or mixed == "float32":
        yield
        return
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(mixed if isinstance(mixed, str) else "mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def backbone_settings(spec: str = "resnet50", weights=IMAGENET, image_size: int | None = None) -> dict:
    """The ``settings`` :func:`build_backbone` will record for a registered backbone, without building it.

    Validates the image size against the registry and normalises ``weights`` (``"imagenet"``,
    ``"none"`` or an absolute file path, with its sha256). Not for ``keras:PATH`` specs, whose
    feature layer and dimension are known only once the model file is loaded.
    """
    info = get_backbone_info(spec)
    size = int(image_size or info.default_size)
    if size < info.min_size:
        raise FeatxError(f"{info.name} needs an image size of at least {info.min_size}px. Received: {size}")
    kind, path = resolve_weights(weights)
    settings = {
        "name": info.name,
        "weights": path if kind == "file" else kind,
        "image_size": size,
        "preprocessing": info.preprocessing,
        "dim": info.dim,
    }
    if kind == NONE:
        settings["seed"] = RANDOM_SEED
    if kind == "file":
        settings["weights_sha256"] = sha256_file(path)
    return settings


def build_backbone(
    spec: str = DEFAULT_BACKBONE,
    weights=IMAGENET,
    image_size: int | None = None,
    *,
    mixed_precision: bool = False,
) -> Backbone:
    """Build the backbone ``spec``: a registered name (``resnet50``...), ``hub:PRESET`` or ``keras:PATH[:LAYER]``.

    ``weights`` is ``"imagenet"`` (Keras' download and cache), ``"none"``/``None`` (a seeded random
    init, for tests and smoke runs) or the path of a weights file for the headless network. Raises
    :class:`~featx.errors.WeightsUnavailableError` when ImageNet weights are neither cached nor
    downloadable, and :class:`~featx.errors.FeatxError` for any other unusable argument.
    """
    spec = str(spec).strip()
    if spec.lower().startswith(KERAS_PREFIX):
        from featx.backbones.saved import build_saved

        return build_saved(spec, weights=weights, image_size=image_size)
    if spec.lower().startswith(HUB_PREFIX):
        from featx.backbones.hub import build_hub

        return build_hub(spec, weights=weights, image_size=image_size, mixed_precision=mixed_precision)
    settings = backbone_settings(spec, weights, image_size)
    info = get_backbone_info(spec)
    size, w = settings["image_size"], settings["weights"]
    kind = w if w in (IMAGENET, NONE) else "file"
    with precision_policy(mixed_precision), seeded(RANDOM_SEED if kind == NONE else None):
        try:
            with quiet_failed_download():
                model, preprocess = BACKBONES.create(info.name, IMAGENET if kind == IMAGENET else None, (size, size, 3))
        except Exception as e:  # noqa: BLE001 - Keras raises bare Exception for download failures
            if kind == IMAGENET and is_download_error(e):
                raise offline_error(info.name) from None
            if kind == IMAGENET and "hash" in str(e).lower():
                raise FeatxError(
                    f"the cached ImageNet weights for {info.name} are corrupt ({_first_line(e)}): "
                    "delete the file from the Keras cache or pass --weights /path/to/weights.h5"
                ) from None
            raise FeatxError(f"cannot build backbone {info.name} at {size}px: {_first_line(e)}") from None
    if kind == "file":
        try:
            model.load_weights(w)
        except Exception as e:  # noqa: BLE001 - h5py/keras raise many kinds
            raise FeatxError(
                f"cannot load weights {w} into {info.name}: {_first_line(e)} (expected weights of "
                f"{info.name} without its top, e.g. Keras' *_notop.h5 or a .weights.h5 saved from it)"
            ) from None
    dim = int(model.output_shape[-1])
    if dim != info.dim:  # pragma: no cover - guards the registry's documented dims
        raise FeatxError(f"{info.name} gave {dim}-d features, registry says {info.dim}")
    return Backbone(model, preprocess, dim, size, settings, mixed_precision=bool(mixed_precision))


def backbone_from_settings(settings: dict, *, mixed_precision: bool = False) -> Backbone:
    """Rebuild the backbone a feature file or classifier manifest records, checking it is the same."""
    if not settings or "name" not in settings:
        raise FeatxError("no backbone recorded (features made outside featx extract): cannot rebuild it")
    weights = settings.get("weights") or IMAGENET
    backbone = build_backbone(
        settings["name"],
        weights=None if weights == NONE else weights,
        image_size=settings.get("image_size"),
        mixed_precision=mixed_precision,
    )
    if settings.get("preset_handle") and backbone.settings.get("preset_handle") != settings["preset_handle"]:
        raise FeatxError(
            f"KerasHub now resolves {settings['name']} to {backbone.settings.get('preset_handle')}, the features were "
            f"extracted with {settings['preset_handle']}: pass hub:{settings['preset_handle']} to get the same weights"
        )
    for key in ("weights_sha256", "model_sha256"):
        if settings.get(key) and backbone.settings.get(key) != settings[key]:
            raise FeatxError(
                f"backbone file of {settings['name']} changed since the features were extracted "
                f"({key} {backbone.settings.get(key)} != recorded {settings[key]}): use the original file"
            )
    if settings.get("dim") and int(settings["dim"]) != backbone.dim:
        raise FeatxError(f"backbone {settings['name']} now gives {backbone.dim}-d features, recorded {settings['dim']}")
    return backbone


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]
