"""Names and types of the featx HDF5 format, shared by the writer and the readers."""

import h5py

#: Main dataset of each kind of file.
DATASET_FOR_KIND = {"images": "images", "features": "features"}

ATTR_VERSION = "featx_version"
ATTR_KIND = "kind"
ATTR_CREATED = "created"
ATTR_CONFIG = "config"
ATTR_COMPLETE = "complete"
ATTR_SOURCE_KEY = "source_key"
#: Set (True) when the ``paths`` dataset holds names in the escaped form of
#: :func:`featx.utils.escape_name` (featx 0.3 on): the readers give back the exact file names.
ATTR_PATHS_ESCAPED = "paths_escaped"

#: UTF-8 variable-length strings (h5py 3 reads them as bytes; the readers decode them).
STR_DTYPE = h5py.string_dtype("utf-8")
