"""``featx convert``: features between featx HDF5 and open formats (Parquet, NumPy), both ways.

* HDF5 -> Parquet (:mod:`~featx.convert.parquet`): one row per image (``path``, ``label``,
  ``label_name``, ``split``, ``embedding`` as a fixed-size list of float32), written in row groups
  (memory bounded by one group), the file's featx settings in the schema metadata (key ``featx``).
* HDF5 -> ``.npy`` (:mod:`~featx.convert.npy`): the ``(N, D)`` float32 matrix, ``STEM.labels.csv``
  (``path,label,label_name,split``) and ``STEM.featx.json`` (label names, settings) beside it.
* Parquet / ``.npy`` -> HDF5: through :class:`featx.store.StoreWriter`, so embeddings made elsewhere
  (clip-retrieval, img2dataset pipelines) become a normal featx features file for fit, inspect, report.

Importing this package imports neither pyarrow nor TensorFlow.
"""

from featx.convert.api import FORMATS, ConvertResult, convert, format_of

__all__ = ["FORMATS", "ConvertResult", "convert", "format_of"]
