"""The from-scratch models, keyed by name: a :class:`featx.registry.Registry` of :class:`ModelInfo`.

Model modules decorate their public builder with :func:`register_model`; the registry is keyed by
the function name (or an explicit name) and stores a :class:`ModelInfo` next to the builder. Users
go through :func:`create_model`, :func:`list_models` and :func:`get_model_info` (or the registry
object :data:`MODELS` itself, whose API is the same as the backbones')::

    from scratch_models import create_model, get_model_info

    model = create_model("minigooglenet", classes=10)     # canonical 32x32x3
    info = get_model_info("minigooglenet")
    extractor = keras.Model(model.input, model.get_layer(info.feature_layer).output)

Nothing here imports Keras: the info is readable without TensorFlow (``featx models``, every
``--help``); builders import Keras when called. Input validation (shape, classes) lives in the
builders themselves, so calling a builder directly is exactly as safe as :func:`create_model`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from featx.registry import Registry

__all__ = ["MODELS", "ModelInfo", "create_model", "get_model_info", "list_models", "register_model"]


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
        feature_dim: Length of the feature layer's output (None if it depends on the input).
        params: Parameter count at the canonical input size with the default classes
            (documentation, checked by the tests; None if not stated).
    """

    name: str
    description: str = ""
    input_size: int | None = None
    channels: int = 3
    default_classes: int | None = None
    feature_layer: str | None = None
    min_input_size: int = 1
    feature_dim: int | None = None
    params: int | None = None

    @property
    def input_shape(self) -> tuple[int, int, int] | None:
        """Canonical input shape in the current ``keras.config.image_data_format()`` (imports Keras)."""
        if self.input_size is None:
            return None
        import keras

        size, channels = self.input_size, self.channels
        if keras.config.image_data_format() == "channels_first":
            return (channels, size, size)
        return (size, size, channels)


#: The registry itself (listed by name).
MODELS: Registry[ModelInfo] = Registry("scratch model", order="name")


def register_model(
    fn: Callable[..., Any] | str | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    input_size: int | None = None,
    channels: int = 3,
    default_classes: int | None = None,
    feature_layer: str | None = None,
    min_input_size: int = 1,
    feature_dim: int | None = None,
    params: int | None = None,
):
    """Register a model builder.

    Usable bare (``@register_model``), with an explicit name
    (``@register_model("name")``) or with metadata
    (``@register_model(input_size=32, feature_layer="flatten")``).  The
    description defaults to the first line of the builder's docstring.
    The builder must accept ``input_shape=None`` and ``classes=None`` keywords
    and should import Keras inside its body, so registering stays cheap.

    Raises:
        featx.errors.RegistryError: if the name is already registered.
    """
    if isinstance(fn, str):
        name, fn = fn, None

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        doc = (builder.__doc__ or "").strip()
        info = ModelInfo(
            name=Registry.key(name or builder.__name__),
            description=description or (doc.splitlines()[0] if doc else ""),
            input_size=input_size,
            channels=channels,
            default_classes=default_classes,
            feature_layer=feature_layer,
            min_input_size=min_input_size,
            feature_dim=feature_dim,
            params=params,
        )
        return MODELS.register(info, builder)

    return decorator(fn) if fn is not None else decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted (``MODELS.list_infos()`` gives their infos)."""
    return MODELS.list_names()


def get_model_info(name: str) -> ModelInfo:
    """Metadata of a registered model.

    Raises:
        featx.errors.RegistryError: if ``name`` is not registered.
    """
    return MODELS.get_info(name)


def create_model(
    name: str,
    input_shape: tuple[int, int, int] | None = None,
    classes: int | None = None,
    **kwargs: Any,
):
    """Build a registered model (a ``keras.Model``).

    Args:
        name: Registry name (see :func:`list_models`).
        input_shape: ``(height, width, channels)`` (channels first under a
            ``channels_first`` data format).  None: the model's canonical size.
        classes: Number of output classes (>= 2).  None: the model's default.
        **kwargs: Model-specific options (e.g. ``reg``, ``name``).

    Raises:
        featx.errors.RegistryError: on an unknown name.
        ValueError: on a malformed ``input_shape`` or ``classes``.
    """
    return MODELS.create(name, input_shape=input_shape, classes=classes, **kwargs)
