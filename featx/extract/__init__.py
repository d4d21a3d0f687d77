"""``featx extract``: images (a folder, a CSV or an images HDF5) -> backbone features in HDF5.

Reader -> mapper -> writer, with a distributor around them (one concept per module):

* :mod:`~featx.extract.config`: :class:`ExtractConfig`, the parameters validated once;
* :mod:`~featx.extract.sources`: the rows (path, label) as a table cut into contiguous shards;
* :mod:`~featx.extract.reader`: ``tf.data`` decode + resize of files, or slabs of an images HDF5;
* :mod:`~featx.extract.mapper`: :class:`FeatureMapper`, numpy batches -> features (the one
  forward-pass code path; Ray Data's ``map_batches`` protocol);
* :mod:`~featx.extract.writer`: the background HDF5 writer;
* :mod:`~featx.extract.local` / :mod:`~featx.extract.ray_runner`: who runs it, in this process or
  on Ray actors, shard by shard; :mod:`~featx.extract.shards`: shard files, validation, merge;
* :mod:`~featx.extract.api`: :func:`extract`, which ties them together.
"""

from featx.extract.api import ATTR_TIMING, ExtractResult, extract, run_extract
from featx.extract.config import ENGINES, ExtractConfig
from featx.extract.mapper import FeatureMapper
from featx.extract.reader import image_dataset
from featx.extract.sources import Shard, Source, open_source, plan_shards

__all__ = [
    "ATTR_TIMING",
    "ENGINES",
    "ExtractConfig",
    "ExtractResult",
    "FeatureMapper",
    "Shard",
    "Source",
    "extract",
    "image_dataset",
    "open_source",
    "plan_shards",
    "run_extract",
]
