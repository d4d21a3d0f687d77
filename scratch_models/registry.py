"""A small timm-style model registry.

Model modules decorate their public builder with :func:`register_model`; the
registry is keyed by the function name (or an explicit name) and stores a
:class:`ModelInfo` next to the builder.  Users go through :func:`create_model`,
:func:`list_models` and :func:`get_model_info`::

    from scratch_models import create_model, get_model_info

    model = create_model("minigooglenet", classes=10)     # canonical 32x32x3
    info = get_model_info("minigooglenet")
    extractor = keras.Model(model.input, model.get_layer(info.feature_layer).output)

Input validation (shape, classes) lives in the builders themselves, so calling
a builder directly is exactly as safe as going through :func:`create_model`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras

__all__ = ["ModelInfo", "create_model", "get_model_info", "list_models", "register_model"]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Metadata of one registered model.

    Attributes:
        name: Registry key.
        description: One-line description.
        input_size: Canonical square input size (pixels), or None if unknown.
        channels: Canonical number of input channels.
        default_classes: Number of classes the builder uses by default.
        feature_layer: Name of the layer whose output feeds the classifier;
            cut the model there to get a feature extractor.
        min_input_size: Smallest spatial size the architecture accepts.
    """

    name: str
    description: str = ""
    input_size: int | None = None
    channels: int = 3
    default_classes: int | None = None
    feature_layer: str | None = None
    min_input_size: int = 1

    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        """Canonical input shape in the current ``keras.config.image_data_format()``."""
        if self.input_size is None:
            return None
        size, channels = self.input_size, self.channels
        if keras.config.image_data_format() == "channels_first":
            return (channels, size, size)
        return (size, size, channels)


_REGISTRY: dict[str, tuple[Callable[..., keras.Model], ModelInfo]] = {}


def register_model(
    fn: Callable[..., keras.Model] | str | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    input_size: int | None = None,
    channels: int = 3,
    default_classes: int | None = None,
    feature_layer: str | None = None,
    min_input_size: int = 1,
):
    """Register a model builder.

    Usable bare (``@register_model``), with an explicit name
    (``@register_model("name")``) or with metadata
    (``@register_model(input_size=32, feature_layer="flatten")``).  The
    description defaults to the first line of the builder's docstring.
    The builder must accept ``input_shape=None`` and ``classes=None`` keywords.

    Raises:
        ValueError: if the name is already registered.
    """
    if isinstance(fn, str):
        name, fn = fn, None

    def decorator(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(
                f"Model {key!r} is already registered; pass register_model(name=...) "
                "to register it under another name."
            )
        doc = (builder.__doc__ or "").strip()
        info = ModelInfo(
            name=key,
            description=description or (doc.splitlines()[0] if doc else ""),
            input_size=input_size,
            channels=channels,
            default_classes=default_classes,
            feature_layer=feature_layer,
            min_input_size=min_input_size,
        )
        _REGISTRY[key] = (builder, info)
        return builder

    return decorator(fn) if fn is not None else decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def _lookup(name: str) -> tuple[Callable[..., keras.Model], ModelInfo]:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown model {name!r}. Available: {', '.join(list_models())}") from None


def get_model_info(name: str) -> ModelInfo:
    """Metadata of a registered model.

    Raises:
        ValueError: if ``name`` is not registered.
    """
    return _lookup(name)[1]


def create_model(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    classes: int | None = None,
    **kwargs: Any,
) -> keras.Model:
    """Build a registered model.

    Args:
        name: Registry name (see :func:`list_models`).
        input_shape: ``(height, width, channels)`` (channels first under a
            ``channels_first`` data format).  None: the model's canonical size.
        classes: Number of output classes (>= 2).  None: the model's default.
        **kwargs: Model-specific options (e.g. ``reg``, ``name``).

    Raises:
        ValueError: on an unknown name, a malformed ``input_shape`` or ``classes``.
    """
    builder, _ = _lookup(name)
    return builder(input_shape=input_shape, classes=classes, **kwargs)
