"""From-scratch CNNs from "Deep Learning for Computer Vision with Python" (Practitioner
Bundle), written for Keras 3, behind a timm-style registry.

    >>> from scratch_models import create_model, list_models, get_model_info
    >>> list_models()
    ['alexnet', 'deepergooglenet', 'minigooglenet']
    >>> model = create_model("minigooglenet", input_shape=(48, 48, 1), classes=5)
    >>> get_model_info("minigooglenet").feature_layer
    'flatten'

Every layer has a deterministic name; ``get_model_info(name).feature_layer`` is
the layer feeding the softmax ``predictions`` layer, where a trained model is cut
to serve as a feature extractor.
"""

from . import alexnet, deepergooglenet, minigooglenet  # noqa: F401  (registers the models)
from .registry import ModelInfo, create_model, get_model_info, list_models, register_model

__all__ = ["ModelInfo", "create_model", "get_model_info", "list_models", "register_model"]
