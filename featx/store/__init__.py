"""The HDF5 store shared by both paths: one writer, readers, one format."""

from featx.store.reader import StoreReader, open_store, peek_kind
from featx.store.settings import feature_settings
from featx.store.writer import StoreWriter

__all__ = ["StoreReader", "StoreWriter", "feature_settings", "open_store", "peek_kind"]
