"""Stores: the ``Store`` protocol, its backends, ``open_store`` and ``default_store``."""

from podline.stores._delta_verify import Finding, VerifyReport
from podline.stores.base import RECORD_ID, PathLike, Store, StorePath, normalize_path
from podline.stores.config import open_store
from podline.stores.default import default_store
from podline.stores.delta import DeltaStore
from podline.stores.memory import MemoryStore

__all__ = [
    "RECORD_ID",
    "DeltaStore",
    "Finding",
    "MemoryStore",
    "PathLike",
    "Store",
    "StorePath",
    "VerifyReport",
    "default_store",
    "normalize_path",
    "open_store",
]
