"""Stores: the ``Store`` protocol, its backends, ``open_store`` and ``default_store``; for
writing a backend, ``Backend`` and ``ScopedStore`` (see ``podline.stores.backend``) and
``register_store``."""

from podline.stores._delta_verify import Finding, Verifiable, VerifyReport
from podline.stores.backend import Backend
from podline.stores.base import (
    RECORD_ID,
    PathLike,
    Store,
    StorePath,
    normalize_path,
    segment_problem,
)
from podline.stores.config import open_store
from podline.stores.default import default_store
from podline.stores.delegating import DelegatingStore
from podline.stores.delta import DeltaStore
from podline.stores.memory import MemoryStore
from podline.stores.postgres import PostgresStore
from podline.stores.registry import register_store, store_schemes
from podline.stores.scoped import ScopedStore
from podline.stores.statistics import StoreStatistics

__all__ = [
    "RECORD_ID",
    "Backend",
    "DelegatingStore",
    "DeltaStore",
    "Finding",
    "MemoryStore",
    "PathLike",
    "PostgresStore",
    "ScopedStore",
    "Store",
    "StorePath",
    "StoreStatistics",
    "Verifiable",
    "VerifyReport",
    "default_store",
    "normalize_path",
    "open_store",
    "register_store",
    "segment_problem",
    "store_schemes",
]
