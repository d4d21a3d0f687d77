"""``featx export``: a classifier or a trained run as one deployable model, pixels to probabilities.

* :mod:`~featx.export.source`: what is exported (a ``featx fit`` classifier, loaded through its
  integrity checks, with its backbone; or a run's ``model.keras``) and featx's own path on it;
* :mod:`~featx.export.network`: the Keras network (preprocessing layers, backbone, the classifier
  folded into a Dense layer by :func:`featx.fit.dense_head`);
* :mod:`~featx.export.decode_graph`: encoded images decoded in the graph (``predict_bytes``);
* :mod:`~featx.export.formats`: one writer and one runner per format (SavedModel, ONNX, TFLite,
  ``.keras``);
* :mod:`~featx.export.api`: :func:`export_model`: partial folder, parity check, ``export.json``;
* :mod:`~featx.export.exported`: :func:`load_exported`, an export folder read back (``featx predict``).

Importing this package imports neither TensorFlow nor Keras.
"""

from featx.export.api import (
    DEFAULT_TFLITE_TOLERANCE,
    DEFAULT_TOLERANCE,
    EXPORT_JSON,
    ExportResult,
    export_model,
    synthetic_images,
)
from featx.export.exported import ExportedModel, is_export_dir, load_exported, read_export
from featx.export.formats import DEFAULT_FORMATS, EXPORT_INSTALL, FILES, FORMATS, parse_formats

__all__ = [
    "DEFAULT_FORMATS",
    "DEFAULT_TFLITE_TOLERANCE",
    "DEFAULT_TOLERANCE",
    "EXPORT_INSTALL",
    "EXPORT_JSON",
    "FILES",
    "FORMATS",
    "ExportResult",
    "ExportedModel",
    "export_model",
    "is_export_dir",
    "load_exported",
    "parse_formats",
    "read_export",
    "synthetic_images",
]
