"""``MemoryStore``: records held in process memory, for tests and throwaway runs.

Nothing is buffered, so ``flush`` has nothing to do. A memory store has a name
(``memory://<name>``; a random one unless given); stores opened with the same name in one
process share their records for as long as any of them is alive, which is what lets
``open_store(store.to_config())`` find the same records again.
"""

from __future__ import annotations

import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Self
from urllib.parse import quote, unquote

import pyarrow as pa

from podline.matching import is_in, rows_in_order
from podline.stores._common import (
    check_columns,
    conform,
    evolve_schema,
    pieces,
    row_filter,
)
from podline.stores._index import HeldIds, IdIndex
from podline.stores.base import StorePath
from podline.stores.scoped import ScopedStore

__all__ = ["MemoryStore"]

_SCHEME = "memory"
_BACKENDS: weakref.WeakValueDictionary[str, _MemoryBackend] = weakref.WeakValueDictionary()
_BACKENDS_LOCK = threading.Lock()


class _MemoryTable:
    """The records of one path: chunks conformed to ``schema``, and an id index per id
    column that writes have used (built on first use)."""

    __slots__ = ("chunks", "indexes", "schema")

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.chunks: list[pa.Table] = []
        self.indexes: dict[str, IdIndex] = {}

    def table(self) -> pa.Table:
        return pa.concat_tables(self.chunks) if self.chunks else self.schema.empty_table()

    def index(self, id_column: str) -> IdIndex:
        index = self.indexes.get(id_column)
        if index is None:
            index = self.indexes[id_column] = IdIndex(HeldIds())
            if self.schema.get_field_index(id_column) >= 0:
                index.add(self.table()[id_column])
        return index

    def append(self, rows: pa.Table, schema: pa.Schema, path: StorePath) -> None:
        if schema != self.schema:
            self.chunks = [conform(chunk, schema, path) for chunk in self.chunks]
            self.schema = schema
        self.chunks.append(rows)
        for column, index in self.indexes.items():
            if schema.get_field_index(column) >= 0:
                index.add(rows[column])


class _MemoryBackend:
    """The records of every path of one named memory store."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tables: dict[StorePath, _MemoryTable] = {}
        self._lock = threading.RLock()

    def write(self, path: StorePath, table: pa.Table, id_column: str, *, fresh: bool) -> int:
        with self._lock:
            state = self._tables.get(path)
            schema = evolve_schema(None if state is None else state.schema, table.schema, path)
            if state is not None and not fresh:
                table = table.filter(~state.index(id_column).contains(table[id_column]))
            if not table.num_rows:
                return 0
            if state is None:
                state = self._tables[path] = _MemoryTable(schema)
            state.append(conform(table, schema, path), schema, path)
            return table.num_rows

    def read(
        self, path: StorePath, ids: pa.Array, columns: list[str] | None, id_column: str
    ) -> pa.Table | None:
        with self._lock:
            state = self._tables.get(path)
            if state is None:
                return None
            check_columns([id_column, *(columns or ())], state.schema, path)
            table = state.table()
        ordered = rows_in_order(table, ids, id_column)
        return ordered if columns is None else ordered.select(columns)

    def scan(
        self, path: StorePath, columns: list[str] | None, where: Mapping[str, Any] | None
    ) -> pa.Table | None:
        with self._lock:
            state = self._tables.get(path)
            if state is None:
                return None
            check_columns(columns or (), state.schema, path)
            rows = row_filter(where, state.schema, path)
            table = state.table()
        if rows is not None:
            table = rows.apply(table)
        return table if columns is None else table.select(columns)

    def scan_batches(self, path: StorePath, columns: list[str] | None) -> Iterator[pa.Table] | None:
        # The rows are in memory already: slices of them cost nothing.
        return pieces(self.scan(path, columns, None))

    def delete(self, path: StorePath, ids: pa.Array, id_column: str) -> int:
        with self._lock:
            state = self._tables.get(path)
            if state is None or state.schema.get_field_index(id_column) < 0:
                return 0
            table = state.table()
            gone = is_in(table[id_column], ids)
            if not gone.any():
                return 0
            state.chunks = [table.filter(pa.array(~gone))]
            state.indexes = {}  # rebuilt on next use, without the removed ids
            return int(gone.sum())

    def exists(self, path: StorePath) -> bool:
        with self._lock:
            return path in self._tables

    def paths(self, prefix: StorePath) -> Iterable[StorePath]:
        with self._lock:
            return [p for p in self._tables if p[: len(prefix)] == prefix]

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Records stay in memory while the store is referenced."""

    def config(self) -> str:
        return f"{_SCHEME}://{quote(self.name, safe='')}"

    def arguments(self) -> dict[str, Any]:
        return {"name": self.name}


class MemoryStore(ScopedStore[_MemoryBackend]):
    """A store in process memory. ``MemoryStore("x")`` shares its records with every other
    live memory store named ``"x"`` in this process; with no name it gets a random one."""

    __slots__ = ()

    schemes = (_SCHEME,)

    def __init__(self, name: str | None = None) -> None:
        key = uuid.uuid4().hex if name is None else name
        with _BACKENDS_LOCK:
            backend = _BACKENDS.get(key)
            if backend is None:
                backend = _BACKENDS[key] = _MemoryBackend(key)
        super().__init__(backend)

    @property
    def name(self) -> str:
        """The name other memory stores can use to reach these records."""
        return self._backend.name

    @classmethod
    def from_base(cls, base: str) -> Self:
        # "memory://" names no store in particular, so it opens a new one.
        name = unquote(base.partition("://")[2])
        return cls(name or None)
