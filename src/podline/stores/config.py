"""``open_store``: a store from its config string (what ``Store.to_config()`` returns).

Accepted forms:

* ``memory://`` (a new memory store) or ``memory://<name>`` (the live memory store of that
  name, or a new one);
* a directory path, or a ``file://`` URL: a ``DeltaStore`` there;
* an object-store URL (``s3://bucket/dir``, ``gs://``, ``az://``, ``abfss://``, ...): a
  ``DeltaStore`` there; the query string carries delta-rs storage options (credentials are
  better left to the environment) and ``flush_rows`` / ``flush_seconds``.

A URL fragment scopes the store: ``file:///data/store#results/fn`` is
``open_store("file:///data/store").at("results", "fn")``.
"""

from __future__ import annotations

import os
from typing import Any

from podline.errors import StoreError
from podline.stores._common import split_config
from podline.stores._scoped import ScopedStore
from podline.stores.base import Store
from podline.stores.delta import DeltaStore
from podline.stores.memory import MemoryStore

__all__ = ["open_store"]

_CLASSES: tuple[type[ScopedStore[Any]], ...] = (MemoryStore, DeltaStore)


def open_store(config: str | os.PathLike[str] | Store) -> Store:
    """The store ``config`` names (see the module docs); a store is returned as it is."""
    if isinstance(config, Store):
        return config
    text = os.fspath(config)
    base, _ = split_config(text)
    scheme = base.partition("://")[0].lower() if "://" in base else ""
    for cls in _CLASSES:
        if scheme in cls.schemes:
            return cls.from_config(text)
    raise StoreError(
        f"no store backend for {text!r}: use memory://, a directory path, file://, s3://, "
        f"gs:// or az://"
    )
