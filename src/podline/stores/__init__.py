"""Stores: the ``Store`` protocol and its backends."""

from podline.stores.base import RECORD_ID, PathLike, Store, StorePath, normalize_path

__all__ = ["RECORD_ID", "PathLike", "Store", "StorePath", "normalize_path"]
