"""``GeneratorSource``: rows that a Python function yields chunk by chunk, never held whole.

The source is given a *function* (typically a generator function) that, each time it is
called, yields the rows as Arrow tables or record batches. It is a ``ChunkedSource``: building
it calls the function for each of the build's passes (to type, count and hash the rows), and
every read of its rows (each run) calls it again, so it must give the same chunks, in the same
order, at every call. A generator *object* can be read once only and is refused.

Determinism is checked, not assumed: the first pass notes a digest of every chunk, and every
later pass compares each chunk with it *before* the chunk is used, so a chunk that differs
(or one chunk too many, or too few) is a ``SourceError`` naming the source and the chunk,
and rows other than those the build hashed are never served under its identity. The digest is
a SHA-256 of the chunk's Arrow IPC bytes, and, when the bytes differ (the same values laid out
differently), the chunk's content hash.

Chunks are Arrow only (rows as dicts take ``pa.Table.from_pylist(rows, schema)`` in the
function): inferring types chunk by chunk could type one column differently in two chunks.
Every chunk must have the same columns, of the same logical types; ``schema=`` casts every
chunk to one Arrow schema instead, and types a function that yields nothing.

A function has no fingerprint, so builds are not cached across processes unless
``cache_key`` is given: a string the user changes whenever the rows change (a version). The
build's outcome and its chunk digests are then cached under it, and later processes skip the
build's passes; reads still compare every chunk with the digests, so a key kept after the rows
changed is a ``SourceError``, never new rows under the old identity.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import NoReturn

import pyarrow as pa

from podline.columns import column_names
from podline.conversion import cast_table
from podline.errors import PodlineError, SourceError, format_names
from podline.hashing import hash_table, logical_type
from podline.sources.base import NullableMode
from podline.sources.chunked import ChunkedSource
from podline.sources.hash_cache import CachedBuild, ChunkDigest, FileStat

__all__ = ["ChunkFunction", "GeneratorSource"]

#: What a ``GeneratorSource`` calls: each call gives every chunk again, in order.
ChunkFunction = Callable[[], Iterable[pa.Table | pa.RecordBatch]]

_END = object()


class GeneratorSource(ChunkedSource):
    """Rows yielded chunk by chunk by ``chunks()`` (see the module docs).

    ``chunks`` is called with no argument, once per pass of the build and once per read of the
    rows, and yields ``pa.Table``s or ``pa.RecordBatch``es with the same columns each time.
    ``schema``: cast every chunk to it (and the type of a source with no chunk). ``cache_key``:
    a version of the rows, under which the build is cached across processes. The label
    defaults to the function's name.

    >>> def squares():
    ...     for start in range(0, 1_000, 100):
    ...         k = range(start, start + 100)
    ...         yield pa.table({"k": k, "sq": [i * i for i in k]})
    >>> GeneratorSource(squares, tag_columns=["k"])
    """

    def __init__(
        self,
        chunks: ChunkFunction,
        tag_columns: str | Iterable[str] = (),
        *,
        schema: pa.Schema | None = None,
        source_id: str | None = None,
        record_id_column: str | None = None,
        label: str | None = None,
        nullable: NullableMode = "infer",
        cache_key: str | None = None,
    ) -> None:
        self.label = label or _name(chunks) or type(self).__name__
        _check_function(self.label, chunks)
        self._function = chunks
        self._declared = schema
        self._cache_version = cache_key
        self._digests: tuple[ChunkDigest, ...] | None = None
        key = None
        if cache_key is not None:
            key = {
                "kind": "GeneratorSource",
                "cache_key": cache_key,
                "tag_columns": list(column_names(tag_columns)),
                "schema": None if schema is None else _schema_text(schema),
                "source_id": source_id,
                "record_id_column": record_id_column,
                "nullable": nullable,
            }
        self._build(
            tag_columns,
            source_id=source_id,
            record_id_column=record_id_column,
            nullable=nullable,
            cache_key=key,
        )

    # ------------------------------------------------------------------ ChunkedSource
    def _fingerprint(self) -> tuple[FileStat, ...] | None:
        # No file to fingerprint: the user's cache key stands for the rows (or nothing).
        return None if self._cache_version is None else ()

    def _establish(self, source_id: str | None, nullable: NullableMode) -> CachedBuild:
        built = super()._establish(source_id, nullable)
        return dataclasses.replace(built, chunks=self._digests)

    def _adopt(self, built: CachedBuild) -> None:
        self._digests = built.chunks

    def _chunks(self) -> Iterator[pa.Table | pa.RecordBatch]:
        """The function's chunks, conformed, each checked against the first pass's before
        it is given."""
        known = self._digests
        seen: list[ChunkDigest] = []
        names = None if self._declared is None else self._declared.names
        types: list[str] | None = None
        for index, data in enumerate(self._called()):
            table = self._conform(index, data, names)
            names = table.column_names
            current = [logical_type(f.type, f.name) for f in table.schema]
            if types is not None and current != types:
                self._types_differ(index, table.schema, types)
            types = current
            if known is not None:
                self._check_chunk(index, table, known)
            yield table
            # Noted after the chunk was checked as a source's rows (names, types).
            seen.append(_digest(table) if known is None else known[index])
        if known is None:
            self._digests = tuple(seen)
        elif len(seen) != len(known):
            raise self._differs(f"{len(seen)} chunk(s), where the first call gave {len(known)}")
        if types is None:
            if self._declared is None:
                raise SourceError(
                    f"{self.label}: its function yielded no chunk; give schema= for a source "
                    "that may be empty"
                )
            yield self._declared.empty_table()

    # ------------------------------------------------------------------ checks
    def _called(self) -> Iterator[object]:
        """What one call of the function yields; its own failures become ``SourceError``s."""
        with self._user_code():
            made = self._function()
        if isinstance(made, pa.Table | pa.RecordBatch):
            raise SourceError(
                f"{self.label}: its function returned one {type(made).__name__}; it must "
                "yield the chunks (or use ArrowTableSource for one table)"
            )
        with self._user_code():
            chunks = iter(made)
        while True:
            with self._user_code():
                data = next(chunks, _END)
            if data is _END:
                return
            yield data

    @contextlib.contextmanager
    def _user_code(self) -> Iterator[None]:
        try:
            yield
        except PodlineError:
            raise
        except Exception as exc:  # the user's function failed: say which source it feeds
            raise SourceError(
                f"{self.label}: its function raised {type(exc).__name__}: {exc}"
            ) from exc

    def _conform(self, index: int, data: object, names: list[str] | None) -> pa.Table:
        """Chunk ``index`` as a table with the columns ``names`` in order (cast to the
        declared schema, if any)."""
        if not isinstance(data, pa.Table | pa.RecordBatch):
            raise SourceError(
                f"{self.label}: chunk {index} is a {type(data).__name__}; the function must "
                "yield pyarrow Tables or RecordBatches (rows as dicts: "
                "pa.Table.from_pylist(rows, schema))"
            )
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        if names is not None and sorted(table.column_names) != sorted(names):
            raise SourceError(
                f"{self.label}: chunk {index} has columns {format_names(table.column_names)}; "
                f"expected {format_names(names)}"
            )
        table = table if names is None else table.select(names)
        if self._declared is None:
            return table
        try:
            return cast_table(table, self._declared)  # (see ChunkedSource._stamp_chunk)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise SourceError(
                f"{self.label}: chunk {index} does not fit the declared schema ({exc})"
            ) from exc

    def _types_differ(self, index: int, schema: pa.Schema, types: list[str]) -> NoReturn:
        differ = [
            f"{f.name!r} is {logical_type(f.type, f.name)}, was {t}"
            for f, t in zip(schema, types, strict=True)
            if logical_type(f.type, f.name) != t
        ]
        raise SourceError(
            f"{self.label}: chunk {index} changes column types ({'; '.join(differ)}); "
            "give schema= to cast every chunk to one schema"
        )

    def _check_chunk(self, index: int, table: pa.Table, known: tuple[ChunkDigest, ...]) -> None:
        if index >= len(known):
            raise self._differs(f"more than the {len(known)} chunk(s) of the first call")
        quick, content = known[index]
        if _ipc_digest(table) != quick and str(hash_table(table)) != content:
            raise self._differs(f"chunk {index} holds other rows than at the first call")

    def _differs(self, what: str) -> SourceError:
        return SourceError(
            f"{self.label}: the function's chunks changed between calls ({what}); it must "
            "give the same chunks, in the same order, at every call (it is called at every "
            "pass of the build and every read of the rows). The differing rows were not "
            "served: build the source again to read them (with a new cache_key if it has one)"
        )


def _name(function: object) -> str | None:
    """A function's own name, for the label (None for a lambda or a callable object)."""
    name = getattr(function, "__name__", None)
    return name if isinstance(name, str) and name != "<lambda>" else None


def _check_function(label: str, chunks: object) -> None:
    if isinstance(chunks, Iterator):  # a generator object, or any other one-shot iterator
        raise SourceError(
            f"{label}: got a {type(chunks).__name__} object, which can be read only once; "
            "pass the function that makes it (GeneratorSource(rows), not "
            "GeneratorSource(rows())): the source reads its rows again at every pass of its "
            "build and every run"
        )
    if not callable(chunks):
        raise SourceError(
            f"{label}: expects a function that yields the chunks (pyarrow Tables or "
            f"RecordBatches), got a {type(chunks).__name__}"
        )


def _schema_text(schema: pa.Schema) -> str:
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def _ipc_digest(table: pa.Table) -> str:
    """SHA-256 of the chunk's schema and batches as Arrow IPC bytes (equal bytes: equal
    rows; the converse need not hold, hence the content hash behind it)."""
    hasher = hashlib.sha256(table.schema.serialize())
    for batch in table.to_batches():
        hasher.update(batch.serialize())
    return hasher.hexdigest()


def _digest(table: pa.Table) -> ChunkDigest:
    return _ipc_digest(table), str(hash_table(table))
