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

Adding a model is one file: every public module of this package (a name without a
leading underscore) is imported here, and its ``@register_model`` builders appear in
``featx models``, ``featx train``, the demo's ``-m`` and the registry-driven tests.
Importing the package does not import Keras (builders import it when called).
"""

import importlib
import pkgutil

from .registry import MODELS, ModelInfo, create_model, get_model_info, list_models, register_model

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_") and _mod != "registry":
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["MODELS", "ModelInfo", "create_model", "get_model_info", "list_models", "register_model"]
