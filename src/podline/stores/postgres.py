"""``PostgresStore``: records in PostgreSQL tables, Arrow in and out through ADBC.

Each store path is one table in a PostgreSQL schema (``podline`` unless the config names
another), readable with plain SQL; a catalog table in the same schema records each path's
table name, column names and exact Arrow schema (``_pg_layout`` owns the mapping). Batches
go in by the driver's bulk copy and come out as Arrow, never row by row in Python.

Writes are committed before ``write`` returns (write-through): there is no buffer, so
read-your-writes, other processes seeing the records and ``flush`` are all immediate. The
concurrency rule is the database's own: every id column a path is written with has a unique
index, a ``write`` copies its batch into a temporary table and inserts it with ``ON CONFLICT
DO NOTHING`` (the first committed writer of an id wins), and schema changes of a path are
serialized by a transaction-scoped advisory lock and re-checked under it.

A failed connection, or a server restarted mid-run, is a ``StoreError``; the next call opens
a new connection (calls that can be repeated safely retry once on a new connection first).
Nothing committed is lost, so a re-run resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa

from podline.errors import StoreError
from podline.matching import rows_in_order
from podline.stores._common import (
    add_query,
    check_columns,
    conform,
    evolve_schema,
    path_text,
    pieces,
    row_filter,
    split_query,
)
from podline.stores._pg_layout import (
    MAX_NAME,
    decode,
    encode,
    ident,
    literal,
    names_for,
    sql_type,
)
from podline.stores.base import StorePath
from podline.stores.scoped import ScopedStore

__all__ = ["PostgresStore"]

_SCHEMES = ("postgresql", "postgres")
_DEFAULT_SCHEMA = "podline"
_CATALOG = "podline_catalog"
_STAGE = "podline_stage"
_EXTRA = "pip install 'podline[postgres]'"

T = TypeVar("T")


@dataclass(frozen=True)
class _Entry:
    """A path's row in the catalog."""

    table: str
    schema: pa.Schema
    columns: dict[str, str]  # Arrow column name -> SQL column name
    keys: frozenset[str]  # id columns with a unique index


def _driver() -> Any:
    try:
        import adbc_driver_postgresql.dbapi as driver
    except ImportError as exc:
        raise StoreError(
            f"PostgresStore needs the ADBC PostgreSQL driver: {_EXTRA} ({exc})"
        ) from exc
    return driver


def _lock_key(*parts: str) -> int:
    """A 64-bit advisory lock key for ``parts`` (signed, as PostgreSQL takes it)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class _PostgresBackend:
    """The records of one PostgreSQL schema, reached through one connection at a time."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema
        self._lock = threading.RLock()
        self._connection: Any = None
        self._entries: dict[StorePath, _Entry] = {}

    # -- connections and transactions

    def _connect(self) -> Any:
        if self._connection is None:
            self._connection = _driver().connect(self.url)
            try:
                self._transaction_body(self._create_catalog)
            except BaseException:
                self._discard()  # so that the next call creates the catalog again
                raise
        return self._connection

    def _transaction_body(self, body: Callable[[Any], T]) -> T:
        connection = self._connection
        try:
            with connection.cursor() as cursor:
                result = body(cursor)
            connection.commit()
        except BaseException:
            self._rollback()
            raise
        return result

    def _rollback(self) -> None:
        try:
            self._connection.rollback()
        except Exception:  # the connection is gone: the next call opens a new one
            self._discard()

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Closing a broken connection may fail too; it is dropped either way.
            with contextlib.suppress(Exception):
                connection.close()

    def _run(self, what: str, path: StorePath, body: Callable[[Any], T], *, retry: bool) -> T:
        """``body(cursor)`` in one transaction; a database error is a ``StoreError`` naming
        ``what`` and ``path``. With ``retry``, a call whose connection broke is tried once
        more on a new one (for calls that can run twice safely)."""
        driver = _driver()
        with self._lock:
            try:
                self._connect()
                return self._transaction_body(body)
            except driver.Error as exc:
                broken = self._connection is None or isinstance(exc, driver.OperationalError)
                if broken:
                    self._discard()
                if not (retry and broken):
                    where = f" at {path_text(path)}" if path else ""
                    raise StoreError(
                        f"PostgreSQL store {self.config()}: {what}{where} failed: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
            return self._run(what, path, body, retry=False)

    def _create_catalog(self, cursor: Any) -> None:
        # An advisory lock keeps concurrent first connections from racing on CREATE.
        cursor.execute(f"SELECT pg_advisory_xact_lock({_lock_key('catalog', self.schema)})")
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(self.schema)}")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {self._qualified(_CATALOG)} ("
            "path text[] PRIMARY KEY, name text UNIQUE NOT NULL, arrow_schema bytea NOT NULL, "
            "columns text[] NOT NULL, keys text[] NOT NULL DEFAULT '{}')"
        )

    def _qualified(self, table: str) -> str:
        return f"{ident(self.schema)}.{ident(table)}"

    # -- the catalog

    def _entry(self, cursor: Any, path: StorePath, *, fresh: bool) -> _Entry | None:
        """The catalog's entry for ``path`` (None if it holds none), read again unless
        cached and ``fresh`` is false (a cached schema may only lack columns)."""
        if not fresh and path in self._entries:
            return self._entries[path]
        cursor.execute(
            f"SELECT name, arrow_schema, columns, keys FROM {self._qualified(_CATALOG)} "
            "WHERE path = $1",
            parameters=pa.table({"p": pa.array([list(path)], pa.list_(pa.string()))}),
        )
        rows = cursor.fetch_arrow_table().to_pylist()
        if not rows:
            return None
        row = rows[0]
        schema = pa.ipc.read_schema(pa.py_buffer(row["arrow_schema"]))
        entry = _Entry(
            row["name"],
            schema,
            dict(zip(schema.names, row["columns"], strict=True)),
            frozenset(row["keys"]),
        )
        self._entries[path] = entry
        return entry

    def _evolve(self, cursor: Any, path: StorePath, incoming: pa.Schema, id_column: str) -> _Entry:
        """Create or widen ``path``'s table for ``incoming``, under the path's lock (held
        to the end of the transaction), checking against the catalog as it is now."""
        cursor.execute(f"SELECT pg_advisory_xact_lock({_lock_key(self.schema, *path)})")
        entry = self._entry(cursor, path, fresh=True)  # as committed now, under the lock
        schema = evolve_schema(None if entry is None else entry.schema, incoming, path)
        if entry is None:
            entry = self._create_table(cursor, path)
        new = [f for f in schema if f.name not in entry.columns]
        columns = dict(entry.columns)
        for f in new:
            columns[f.name] = _free_name(f.name, set(columns.values()))
            cursor.execute(
                f"ALTER TABLE {self._qualified(entry.table)} ADD COLUMN "
                f"{ident(columns[f.name])} {sql_type(f.type)}"
            )
        keys = set(entry.keys)
        if id_column not in keys:
            index = "~k" + hashlib.sha256(f"{entry.table}\x00{id_column}".encode()).hexdigest()[:40]
            cursor.execute(
                f"CREATE UNIQUE INDEX IF NOT EXISTS {ident(index)} ON "
                f"{self._qualified(entry.table)} ({ident(columns[id_column])})"
            )
            keys.add(id_column)
        entry = _Entry(entry.table, schema, columns, frozenset(keys))
        cursor.execute(
            f"UPDATE {self._qualified(_CATALOG)} SET arrow_schema = $1, columns = $2, keys = $3 "
            "WHERE path = $4",
            parameters=pa.table(
                {
                    "s": pa.array([schema.serialize().to_pybytes()], pa.binary()),
                    "c": pa.array([[columns[n] for n in schema.names]], pa.list_(pa.string())),
                    "k": pa.array([sorted(keys)], pa.list_(pa.string())),
                    "p": pa.array([list(path)], pa.list_(pa.string())),
                }
            ),
        )
        return entry

    def _create_table(self, cursor: Any, path: StorePath) -> _Entry:
        """An empty table for ``path`` (its columns come from ``_evolve``) and its entry."""
        cursor.execute(f"SELECT name FROM {self._qualified(_CATALOG)}")
        taken = {str(n) for n in cursor.fetch_arrow_table().column(0).to_pylist()}
        name = _free_name("/".join(path), taken | {_CATALOG, _STAGE})
        cursor.execute(f"CREATE TABLE {self._qualified(name)} ()")
        cursor.execute(
            f"COMMENT ON TABLE {self._qualified(name)} IS "
            + literal(f"podline store path {path_text(path)}")
        )
        cursor.execute(
            f"INSERT INTO {self._qualified(_CATALOG)} (path, name, arrow_schema, columns) "
            "VALUES ($1, $2, $3, '{}')",
            parameters=pa.table(
                {
                    "p": pa.array([list(path)], pa.list_(pa.string())),
                    "n": pa.array([name]),
                    "s": pa.array([pa.schema([]).serialize().to_pybytes()], pa.binary()),
                }
            ),
        )
        return _Entry(name, pa.schema([]), {}, frozenset())

    # -- records

    def write(self, path: StorePath, table: pa.Table, id_column: str, *, fresh: bool) -> int:
        if not table.num_rows:
            return 0
        done: list[_Entry] = []

        def body(cursor: Any) -> int:
            done.clear()
            entry = self._entry(cursor, path, fresh=False)
            stored = None if entry is None else entry.schema
            schema = evolve_schema(stored, table.schema, path)
            if entry is None or schema != entry.schema or id_column not in entry.keys:
                entry = self._evolve(cursor, path, table.schema, id_column)
            batch = conform(table, entry.schema, path)
            batch = batch.select([n for n in batch.column_names if n in table.column_names])
            wire = encode(batch, entry.columns, path)
            done.append(entry)
            if fresh:
                cursor.adbc_ingest(entry.table, wire, mode="append", db_schema_name=self.schema)
                return table.num_rows
            return self._insert_new(cursor, entry, wire, batch.schema, id_column)

        added = self._run("append" if fresh else "write", path, body, retry=not fresh)
        self._entries[path] = done[0]  # committed: the cache may hold it now
        return added

    def _insert_new(
        self, cursor: Any, entry: _Entry, wire: pa.Table, schema: pa.Schema, id_column: str
    ) -> int:
        """Copy ``wire`` to a temporary table and insert the rows whose ids are new."""
        cursor.adbc_ingest(_STAGE, wire, mode="replace", temporary=True)
        names = ", ".join(ident(n) for n in wire.column_names)
        values = ", ".join(f"{ident(entry.columns[f.name])}::{sql_type(f.type)}" for f in schema)
        added = _count(
            cursor,
            f"INSERT INTO {self._qualified(entry.table)} ({names}) SELECT {values} FROM "
            f"pg_temp.{ident(_STAGE)} ON CONFLICT ({ident(entry.columns[id_column])}) DO NOTHING "
            "RETURNING 1",
        )
        cursor.execute(f"DROP TABLE pg_temp.{ident(_STAGE)}")
        return added

    def _select(
        self,
        cursor: Any,
        entry: _Entry,
        names: list[str],
        path: StorePath,
        *,
        where: str = "",
        parameters: pa.Table | None = None,
    ) -> pa.Table:
        schema = pa.schema([entry.schema.field(n) for n in names])
        listed = ", ".join(ident(entry.columns[n]) for n in names)
        cursor.execute(
            f"SELECT {listed} FROM {self._qualified(entry.table)}{where}", parameters=parameters
        )
        return decode(cursor.fetch_arrow_table(), schema, entry.columns, path)

    def read(
        self, path: StorePath, ids: pa.Array, columns: list[str] | None, id_column: str
    ) -> pa.Table | None:
        def body(cursor: Any) -> pa.Table | None:
            entry = self._entry(cursor, path, fresh=True)
            if entry is None:
                return None
            check_columns([id_column, *(columns or ())], entry.schema, path)
            names = entry.schema.names
            if columns is not None:
                names = [n for n in names if n in columns or n == id_column]
            where = f" WHERE {ident(entry.columns[id_column])} = ANY($1)"
            offsets = pa.array([0, len(ids)], pa.int64())
            wanted = pa.LargeListArray.from_arrays(offsets, ids.cast(pa.large_string()))
            return self._select(
                cursor, entry, names, path, where=where, parameters=pa.table({"ids": wanted})
            )

        found = self._run("read", path, body, retry=True)
        if found is None:
            return None
        ordered = rows_in_order(found, ids, id_column)
        return ordered if columns is None else ordered.select(columns)

    def scan(
        self, path: StorePath, columns: list[str] | None, where: Mapping[str, Any] | None
    ) -> pa.Table | None:
        def body(cursor: Any) -> pa.Table | None:
            entry = self._entry(cursor, path, fresh=True)
            if entry is None:
                return None
            check_columns(columns or (), entry.schema, path)
            rows = row_filter(where, entry.schema, path)
            names = entry.schema.names
            if columns is not None:
                names = [n for n in names if n in columns or n in (where or {})]
            table = self._select(cursor, entry, names, path)
            return table if rows is None else rows.apply(table)

        table = self._run("scan", path, body, retry=True)
        if table is None or columns is None:
            return table
        return table.select(columns)

    def scan_batches(self, path: StorePath, columns: list[str] | None) -> Iterator[pa.Table] | None:
        # One query, read whole: a cursor read in pieces would hold a transaction open
        # for as long as the caller takes.
        return pieces(self.scan(path, columns, None))

    def delete(self, path: StorePath, ids: pa.Array, id_column: str) -> int:
        def body(cursor: Any) -> int:
            entry = self._entry(cursor, path, fresh=True)
            if entry is None or id_column not in entry.columns:
                return 0
            offsets = pa.array([0, len(ids)], pa.int64())
            wanted = pa.LargeListArray.from_arrays(offsets, ids.cast(pa.large_string()))
            return _count(
                cursor,
                f"DELETE FROM {self._qualified(entry.table)} WHERE "
                f"{ident(entry.columns[id_column])} = ANY($1) RETURNING 1",
                pa.table({"ids": wanted}),
            )

        return self._run("delete", path, body, retry=True)

    def exists(self, path: StorePath) -> bool:
        return self._run(
            "exists", path, lambda c: self._entry(c, path, fresh=False) is not None, retry=True
        )

    def paths(self, prefix: StorePath) -> Iterable[StorePath]:
        def body(cursor: Any) -> list[StorePath]:
            cursor.execute(f"SELECT path FROM {self._qualified(_CATALOG)}")
            found = [tuple(p) for p in cursor.fetch_arrow_table().column(0).to_pylist()]
            return [p for p in found if p[: len(prefix)] == prefix]

        return self._run("list", prefix, body, retry=True)

    def flush(self) -> None:
        """Every write is committed when it returns."""

    def close(self) -> None:
        with self._lock:
            self._discard()
            self._entries.clear()

    # -- configs

    def config(self) -> str:
        base, options = split_query(self.url)
        parts = urlsplit(base)
        host = parts.netloc.rpartition("@")
        user = host[0].partition(":")[0]  # the password stays out of configs
        netloc = f"{user}@{host[2]}" if user else host[2]
        if self.schema != _DEFAULT_SCHEMA:
            options["schema"] = self.schema
        return add_query(urlunsplit((parts.scheme, netloc, parts.path, "", "")), options)

    def arguments(self) -> dict[str, Any]:
        return {"url": self.url, "schema": self.schema}


def _count(cursor: Any, statement: str, parameters: pa.Table | None = None) -> int:
    """How many rows ``statement`` (ending in ``RETURNING 1``) changed; the driver's
    ``rowcount`` is -1 for statements with parameters."""
    cursor.execute(f"WITH changed AS ({statement}) SELECT count(*) FROM changed", parameters)
    return int(cursor.fetch_arrow_table().column(0)[0].as_py())


def _free_name(full: str, taken: set[str]) -> str:
    for name in names_for(full):
        if name not in taken:
            return name
    raise StoreError(f"no free PostgreSQL name for {full!r}")  # pragma: no cover


def _check_schema(schema: str) -> None:
    """Refuse a schema name PostgreSQL would not keep as given: it silently cuts a name to
    63 bytes, so two longer names sharing their first 63 bytes would be one schema, and
    two stores meant to be apart would read and write each other's records."""
    size = len(schema.encode())
    if size > MAX_NAME:
        raise StoreError(
            f"PostgreSQL schema name {schema!r} is {size} bytes long: PostgreSQL keeps the "
            f"first {MAX_NAME} bytes of a name, so stores whose schema names share them would "
            f"be one; choose a name of at most {MAX_NAME} bytes"
        )
    if not schema or "\x00" in schema:
        raise StoreError(f"PostgreSQL schema name {schema!r} is empty or holds a NUL character")


class PostgresStore(ScopedStore[_PostgresBackend]):
    """A store in a PostgreSQL database: ``PostgresStore("postgresql://user@host/db")``.

    ``url`` is a libpq connection URI (its password, if any, is kept out of configs: prefer
    ``PGPASSWORD`` or ``~/.pgpass``); records live in the PostgreSQL schema ``schema``, which
    the URL may name instead (``?schema=imaging``, as in configs), default ``podline``.
    """

    __slots__ = ()

    schemes = _SCHEMES

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        _driver()  # a missing driver is named now, not at the first write
        if urlsplit(url).scheme.lower() not in _SCHEMES:
            raise StoreError(f"PostgresStore takes a postgresql:// URL, not {url!r}")
        base, options = split_query(url)
        # ``schema`` is podline's option, not libpq's (which refuses it at connect): it is
        # taken out here, so a config's URL opens the store it names whichever way it is given.
        if "schema" in options:
            named = options.pop("schema")
            if schema is not None and schema != named:
                raise StoreError(
                    f"PostgresStore got two schemas: {named!r} in the URL and schema={schema!r}"
                )
            schema, url = named, add_query(base, options)
        schema = _DEFAULT_SCHEMA if schema is None else schema
        _check_schema(schema)
        super().__init__(_PostgresBackend(url, schema))

    @classmethod
    def from_base(cls, base: str) -> Self:
        return cls(base)
