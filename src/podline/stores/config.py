"""``open_store``: a store from its config string (what ``Store.to_config()`` returns).

Accepted forms:

* ``memory://`` (a new memory store) or ``memory://<name>`` (the live memory store of that
  name, or a new one);
* a directory path, or a ``file://`` URL: a ``DeltaStore`` there;
* ``postgresql://user@host:port/db`` (or ``postgres://``): a ``PostgresStore`` in that database
  (``?schema=`` names the PostgreSQL schema; it needs the ``podline[postgres]`` extra);
* an object-store URL (``s3://bucket/dir``, ``gs://``, ``az://``, ``abfss://``, ...): a
  ``DeltaStore`` there; the query string carries delta-rs storage options (credentials are
  better left to the environment) and ``flush_rows`` / ``flush_seconds``.

A URL fragment scopes the store: ``file:///data/store#results/fn`` is
``open_store("file:///data/store").at("results", "fn")``.

Other schemes open whatever store class registered them (``podline.stores.registry``).
"""

from __future__ import annotations

import os

from podline.stores._common import split_config
from podline.stores.base import Store
from podline.stores.delta import DeltaStore
from podline.stores.memory import MemoryStore
from podline.stores.postgres import PostgresStore
from podline.stores.registry import register_store, store_class

__all__ = ["open_store"]

register_store(MemoryStore)
register_store(DeltaStore)
# Built in, since the module needs its driver only when a store is opened: without it,
# open_store("postgresql://...") is a StoreError naming the extra to install.
register_store(PostgresStore)


def open_store(config: str | os.PathLike[str] | Store) -> Store:
    """The store ``config`` names (see the module docs); a store is returned as it is."""
    if isinstance(config, Store):
        return config
    text = os.fspath(config)
    base, _ = split_config(text)
    scheme = base.partition("://")[0].lower() if "://" in base else ""
    return store_class(scheme).from_config(text)
