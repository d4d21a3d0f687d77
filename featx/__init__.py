"""featx: transfer learning and feature extraction on image datasets.

Two paths share one HDF5 store (:mod:`featx.store`):

* transfer: ``featx extract`` (pretrained backbone -> features) then ``featx fit``;
* from scratch: ``featx build`` (images -> HDF5) then ``featx train`` / ``featx evaluate``.

Importing :mod:`featx` is cheap: TensorFlow is imported only by the modules that need it.
"""

__version__ = "0.2.0"

from featx.errors import FeatxError  # noqa: E402

__all__ = ["FeatxError", "__version__"]
