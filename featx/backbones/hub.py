"""``hub:PRESET``: a KerasHub vision backbone as a feature extractor (``pip install "featx[hub]"``).

``PRESET`` is anything ``keras_hub.models.Backbone.from_preset`` accepts: a built-in preset name
(``dinov2_small``, ``clip_vit_base_patch16``...), a ``kaggle://`` or ``hf://`` handle, or a local
preset folder (``backbone.save_to_preset(DIR)`` plus its image converter). Weights come from KerasHub's
own download and cache; offline and not cached, :func:`build_hub` says so in one line.

The preset's image converter gives the input size and the normalization (its ``scale`` and
``offset``, recorded in the settings); featx resizes with its own pipeline (``--resize``). The
vision tower's output is pooled to one vector per image the way its family defines it:

==================  =================  ========================================================
family              pooling            vector
==================  =================  ========================================================
DINOV2Backbone      ``class_token``    the class token after the final LayerNorm
DINOV3Backbone      ``class_token``    the class token after the final LayerNorm
ViTBackbone         ``class_token``    the class token (the mean token without one)
CLIPBackbone        ``image_embedding`` ``get_vision_embeddings``: the projected class token
SigLIPBackbone      ``image_embedding`` ``get_vision_embeddings``: the attention-pooled (MAP) token
(any 4-D output)    ``gap``            global average pool of the last feature map (CNNs)
==================  =================  ========================================================

DINO families interpolate their position embeddings, so ``--image-size`` may differ from the
preset's (a multiple of the patch size); CLIP, SigLIP and ViT presets run at their own size.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from featx.backbones.base import Backbone
from featx.backbones.registry import HUB_PREFIX
from featx.backbones.weights import (
    IMAGENET,
    NONE,
    RANDOM_SEED,
    is_download_error,
    seeded,
    sha256_file,
)
from featx.errors import FeatxError, WeightsUnavailableError

#: ``weights`` of a ``hub:`` backbone: the preset's own weights (``imagenet``, the CLI default, means this).
PRESET = "preset"
CLASS_TOKEN, IMAGE_EMBEDDING, GAP, MEAN_TOKEN = "class_token", "image_embedding", "gap", "mean_token"
#: backbone class name -> (pooling, whether the input size may differ from the preset's)
FAMILIES = {
    "DINOV2Backbone": (CLASS_TOKEN, True),
    "DINOV3Backbone": (CLASS_TOKEN, True),
    "ViTBackbone": (CLASS_TOKEN, False),
    "CLIPBackbone": (IMAGE_EMBEDDING, False),
    "SigLIPBackbone": (IMAGE_EMBEDDING, False),
}
INSTALL = 'pip install "featx[hub]"'


def is_hub_spec(spec) -> bool:
    return isinstance(spec, str) and spec.strip().lower().startswith(HUB_PREFIX)


def parse_hub_spec(spec: str) -> tuple[str, bool]:
    """``"hub:PRESET"`` -> ``(preset, is_local_folder)``; a folder becomes an absolute path."""
    preset = spec.strip()[len(HUB_PREFIX):].strip()
    if not preset:
        raise FeatxError(f"expected hub:PRESET (e.g. hub:dinov2_small, hub:hf://ORG/NAME or hub:/path/to/preset). Received: {spec!r}")
    path = Path(preset).expanduser()
    if "://" not in preset and path.is_dir():
        return str(path.resolve()), True
    return preset, False


def hub_weights(weights) -> str:
    """``"preset"`` (the preset's weights; ``imagenet``, the default, means the same) or ``"none"``."""
    if weights is None:
        return NONE
    text = str(weights).strip().lower()
    if text in (PRESET, IMAGENET, "embedded", ""):
        return PRESET
    if text in (NONE, "random"):
        return NONE
    raise FeatxError(
        f"a hub: backbone takes its weights from the preset: pass --weights preset (the default) or "
        f"--weights none (random init of the preset's architecture). Received: {weights!r}"
    )


def import_keras_hub():
    try:
        import keras_hub
    except ImportError:
        raise FeatxError(f"hub: backbones need KerasHub: {INSTALL}") from None
    return keras_hub


def cache_folder(preset: str) -> str:
    """Where KerasHub's downloads of ``preset`` are cached (kagglehub's or Hugging Face's cache)."""
    if preset.lower().startswith("hf://"):
        try:
            from huggingface_hub import constants

            return str(constants.HF_HUB_CACHE)
        except Exception:  # noqa: BLE001 - optional package
            return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")
    try:
        from kagglehub.config import get_cache_folder

        return str(get_cache_folder())
    except Exception:  # noqa: BLE001 - optional package
        return os.path.join(os.path.expanduser("~"), ".cache", "kagglehub")


def _offline(preset: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"KerasHub preset {preset} is not in the KerasHub cache ({cache_folder(preset)}) and cannot be "
        "downloaded (no network): run once with network access, or save the preset to a folder "
        "(backbone.save_to_preset(DIR)) and pass hub:DIR"
    )


@contextlib.contextmanager
def _hub_errors(preset: str, what: str):
    """KerasHub/kagglehub failures -> one line: offline, unknown preset, or what went wrong."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # kagglehub prints download notices
            yield
    except FeatxError:
        raise
    except Exception as e:  # noqa: BLE001 - kagglehub, requests, keras raise many kinds
        if is_download_error(e):
            raise _offline(preset) from None
        text = (str(e).strip() or type(e).__name__).splitlines()[0][:300]
        if isinstance(e, FileNotFoundError | ValueError) and ("config.json" in str(e) or "Unknown preset" in str(e)):
            raise FeatxError(
                f"unknown KerasHub preset {preset!r}: not a built-in preset name, a kaggle:// or hf:// "
                "handle, or a preset folder (featx models lists a few; keras_hub.models.Backbone.presets all)"
            ) from None
        raise FeatxError(f"cannot {what} KerasHub preset {preset}: {text}") from None


def _as_list(v):
    if v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    return [float(x) for x in v]


def preprocessing_label(scale, offset) -> str:
    """A short name for the converter's normalization (the exact ``scale``/``offset`` are recorded too)."""
    import numpy as np

    s = np.atleast_1d(np.asarray(1.0 if scale is None else scale, np.float64))
    o = np.atleast_1d(np.asarray(0.0 if offset is None else offset, np.float64))

    def close(a, b):
        return np.allclose(a, b, rtol=1e-3, atol=1e-4)

    known = {
        "0..1": ([1 / 255], [0.0]),
        "tf": ([1 / 127.5], [-1.0]),
        "imagenet_mean_std": ([1 / 255 / x for x in (0.229, 0.224, 0.225)],
                              [-m / x for m, x in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]),
        "clip_mean_std": ([1 / 255 / x for x in (0.26862954, 0.26130258, 0.27577711)],
                          [-m / x for m, x in zip((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))]),
        "none": ([1.0], [0.0]),
    }
    for name, (ks, ko) in known.items():
        if close(np.broadcast_to(s, (3,)), np.broadcast_to(ks, (3,))) and close(np.broadcast_to(o, (3,)), np.broadcast_to(ko, (3,))):
            return name
    return "scale_offset"


class ScaleOffset:
    """``x * scale + offset`` (per channel or global), with ``keras.ops``: the converter's normalization."""

    def __init__(self, scale, offset):
        self.scale, self.offset = scale, offset

    def __call__(self, x):
        from keras import ops

        if self.scale is not None:
            x = x * ops.cast(ops.convert_to_tensor(self.scale), x.dtype)
        if self.offset is not None:
            x = x + ops.cast(ops.convert_to_tensor(self.offset), x.dtype)
        return x


def _pooled(backbone, family: str, pooling: str, inputs):
    import keras

    if pooling == IMAGE_EMBEDDING:
        return backbone.get_vision_embeddings(inputs)
    feed = inputs
    if isinstance(getattr(backbone, "input", None), dict) and len(backbone.input) == 1:
        feed = {next(iter(backbone.input)): inputs}
    out = backbone(feed)
    if isinstance(out, dict):
        out = out.get("sequence_output", next(iter(out.values())))
    if len(out.shape) == 4:
        return keras.layers.GlobalAveragePooling2D(name="featx_gap")(out)
    if len(out.shape) != 3:
        raise FeatxError(f"{family} gives outputs of shape {tuple(out.shape)}; featx pools 3-D token or 4-D map outputs")
    if pooling == MEAN_TOKEN:
        return keras.ops.mean(out, axis=1)
    return out[:, 0, :]


def build_hub(spec: str, *, weights=PRESET, image_size: int | None = None, mixed_precision: bool | str = False) -> Backbone:
    """Build a :class:`~featx.backbones.base.Backbone` from ``hub:PRESET`` (see the module docstring)."""
    keras_hub = import_keras_hub()
    import keras
    from keras_hub.src.utils import preset_utils

    preset, local = parse_hub_spec(spec)
    kind = hub_weights(weights)
    with _hub_errors(preset, "read"):
        loader = preset_utils.get_preset_loader(preset)
        cls = loader.check_backbone_class()
    family = cls.__name__
    with _hub_errors(preset, "read the image converter of"):
        try:
            converter = keras_hub.layers.ImageConverter.from_preset(preset)
        except FileNotFoundError:
            converter = None
    if converter is None:
        raise FeatxError(f"KerasHub preset {preset} ({family}) has no image converter: it is not an image model")
    pooling, resizable = FAMILIES.get(family, (GAP, True))
    default = int(converter.image_size[0]) if converter.image_size else None
    if default is None:
        shape = (loader.config.get("config") or {}).get("image_shape") or (None,)
        default = int(shape[0]) if shape[0] else 224
    size = int(image_size or default)
    kwargs = {}
    if size != default:
        if not resizable:
            raise FeatxError(
                f"hub:{preset} ({family}) takes {default}x{default} images (fixed position embeddings): "
                f"drop --image-size or pass --image-size {default}"
            )
        patch = (loader.config.get("config") or {}).get("patch_size")
        if isinstance(patch, int) and size % patch:
            raise FeatxError(f"hub:{preset} needs an image size that is a multiple of its patch size {patch}. Received: {size}")
        if family in ("DINOV2Backbone", "DINOV3Backbone"):
            kwargs["image_shape"] = (size, size, 3)
    if mixed_precision and mixed_precision != "float32":  # True, or a Keras policy name (mixed_bfloat16)
        kwargs["dtype"] = mixed_precision if isinstance(mixed_precision, str) else "mixed_float16"
    with _hub_errors(preset, "build"), seeded(RANDOM_SEED if kind == NONE else None):
        backbone = keras_hub.models.Backbone.from_preset(preset, load_weights=(kind == PRESET), **kwargs)
        if family == "ViTBackbone" and not backbone.get_config().get("use_class_token", True):
            pooling = MEAN_TOKEN
        inputs = keras.Input((size, size, 3), name="images")
        features = _pooled(backbone, family, pooling, inputs)
        model = keras.Model(inputs, features, name=f"{backbone.name}_features")
    if len(model.output_shape) != 2:
        raise FeatxError(f"hub:{preset} ({family}) gives outputs of shape {model.output_shape}, not one vector per image")
    dim = int(model.output_shape[-1])
    scale, offset = _as_list(converter.scale), _as_list(converter.offset)
    settings = {
        "name": f"{HUB_PREFIX}{preset}",
        "weights": kind,
        "image_size": size,
        "preprocessing": preprocessing_label(scale, offset),
        "dim": dim,
        "family": family,
        "pooling": pooling,
        "scale": scale,
        "offset": offset,
    }
    handle = (preset_utils.BUILTIN_PRESETS.get(preset) or {}).get("kaggle_handle")
    if handle:
        settings["preset_handle"] = handle
    if kind == NONE:
        settings["seed"] = RANDOM_SEED
    weights_file = Path(preset) / preset_utils.MODEL_WEIGHTS_FILE
    if local and kind == PRESET and weights_file.is_file():
        settings["model_sha256"] = sha256_file(weights_file)
    return Backbone(model, ScaleOffset(scale, offset), dim, size, settings, mixed_precision=bool(mixed_precision))
