"""``ChunkedSource``: a source whose rows are read in chunks, never held whole.

A subclass says how to read its input from the start, as a sequence of Arrow tables or record
batches (``_chunks``), and how to fingerprint it (``_fingerprint``: None when it cannot). The
build makes the same source ``Source`` makes from the whole table (same schema, record ids,
source id, hidden columns, content hash), in passes over the chunks:

1. the schema (with ``nullable="infer"``, a field is nullable if any chunk holds a null, at any
   depth), the row count, and the record ids' uniqueness (``record_id_column`` only: its ids are
   gathered for that check);
2. the default source id (when none is given): ``hash_table`` of the typed rows with their
   record ids, chunk by chunk (``TableHasher``);
3. the content hash: ``hash_table`` of the stamped rows, chunk by chunk.

With a fingerprint, the outcome is cached across processes (``podline.sources.hash_cache``):
an unchanged input is not read at all until a run reads its rows. Every read checks the
fingerprint again, so rows that changed after the build are never served under the old
identity.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from podline.columns import column_names
from podline.conversion import cast_table
from podline.errors import HashingError, SourceError
from podline.hashing import TableHasher
from podline.schema import Schema
from podline.sources.base import (
    NullableMode,
    Source,
    _canonical,
    check_columns,
    check_unique_ids,
    column_ids,
    positional_ids,
    stamp,
)
from podline.sources.hash_cache import CachedBuild, FileStat, load_build, save_build
from podline.streams import ChunkedTableStream

__all__ = ["ChunkedSource", "or_empty"]

_SOURCE_ID_HEX_CHARS = 16
_RECORD_ID = "__meta:record_id"


class ChunkedSource(Source):
    """Base of sources read in chunks (see the module docs). Subclasses implement
    ``_chunks`` and ``_fingerprint`` and call ``_build`` from their ``__init__``."""

    def _chunks(self) -> Iterable[pa.Table | pa.RecordBatch]:
        raise NotImplementedError

    def _fingerprint(self) -> tuple[FileStat, ...] | None:
        return None

    def _location(self) -> str | None:
        """The file or directory the fingerprint's names are relative to (for messages)."""
        return None

    def _adopt(self, built: CachedBuild) -> None:
        """Take what a subclass keeps of a build, made now or cached (nothing by default)."""

    def _build(
        self,
        tag_columns: str | Iterable[str],
        *,
        source_id: str | None,
        record_id_column: str | None,
        nullable: NullableMode,
        cache_key: dict[str, Any] | None,
    ) -> None:
        """Type, count and hash the rows (or take what the cache knows), then serve them
        chunk by chunk. ``cache_key``: what the outcome depends on besides the files (None:
        not cached)."""
        self._tags = column_names(tag_columns)
        self._record_id_column = record_id_column
        self._files = self._fingerprint()
        key = None if cache_key is None or self._files is None else cache_key
        cached = None if key is None else load_build(self._files or (), key)
        if cached is None:
            try:
                cached = self._establish(source_id, nullable)
            except HashingError as exc:  # a value podline cannot hash: name where it is
                raise SourceError(
                    f"{self.label}: cannot read {self._location() or 'the source'} exactly: {exc}"
                ) from exc
            if key is not None:
                save_build(self._files or (), key, cached)
        self._adopt(cached)
        schema = Schema.from_arrow(cached.schema)
        self._packets = [c for c in cached.schema.names if c not in self._tags]
        self._tag_schema = schema.select(self._tags)
        self._packet_schema = schema.select(self._packets)
        self._schema = cached.schema
        self._source_id = cached.source_id
        self._content_hash = cached.content_hash
        first = self._stamp_chunk(cached.schema.empty_table(), 0)
        self._stream_table = ChunkedTableStream(
            first.schema, self._tags, self._read_stamped, cached.num_rows, label=self.label
        )

    # ------------------------------------------------------------------ passes
    def _typed(self) -> Iterator[pa.Table]:
        """Each chunk as a table of the user columns in source order, types canonical."""
        packets: list[str] | None = None
        for data in self._chunks():
            table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
            if packets is None:
                packets = check_columns(self.label, table.column_names, self._tags)
            yield _canonical(table.select([*self._tags, *packets]), "schema")

    def _establish(self, source_id: str | None, nullable: NullableMode) -> CachedBuild:
        schema: pa.Schema | None = None
        rows = 0
        ids: list[pa.Array] = []
        for table in self._typed():
            tightened = _canonical(table, nullable).schema
            schema = tightened if schema is None else _merge_nullable(schema, tightened)
            if self._record_id_column is not None:
                ids.append(column_ids(self.label, table, self._record_id_column))
            rows += table.num_rows
        if schema is None:
            raise SourceError(f"{self.label}: no rows and no schema could be read")
        if self._record_id_column is not None:
            check_unique_ids(
                self.label, self._record_id_column, pa.chunked_array(ids, pa.large_string())
            )
        del ids
        self._schema = schema
        if source_id is None:
            hasher = TableHasher(schema.append(pa.field(_RECORD_ID, pa.large_string())), rows)
            offset = 0
            for table in self._typed():
                hasher.update(table.append_column(_RECORD_ID, self._ids(table, offset)))
                offset += table.num_rows
            source_id = hasher.digest().short(_SOURCE_ID_HEX_CHARS)
        if not isinstance(source_id, str) or not source_id:
            raise SourceError(f"{self.label}: source_id must be a non-empty string")
        self._source_id = source_id
        self._packets = [c for c in schema.names if c not in self._tags]
        self._packet_schema = Schema.from_arrow(schema).select(self._packets)
        self._tag_schema = Schema.from_arrow(schema).select(self._tags)
        stamped_schema = self._stamp_chunk(schema.empty_table(), 0).schema
        content = TableHasher(stamped_schema, rows)
        for chunk in self._stamped_chunks(schema):
            content.update(chunk)
        return CachedBuild(rows, schema, source_id, content.digest())

    def _ids(self, table: pa.Table, offset: int) -> pa.Array:
        if self._record_id_column is None:
            return positional_ids(offset, table.num_rows)
        return column_ids(self.label, table, self._record_id_column)

    def _stamp_chunk(self, table: pa.Table, offset: int) -> pa.Table:
        # Not table.cast: it refuses nulls no row refers to (a null fixed-size-list slot's
        # items, as Parquet reads them back) where the schema forbids nulls in nested fields.
        typed = cast_table(table, self._schema)
        ids = self._ids(typed, offset)
        return stamp(typed, ids, self._packets, self._source_id, self.pipeline_hash().hex)

    def _stamped_chunks(self, schema: pa.Schema) -> Iterator[pa.Table]:
        offset = 0
        for table in self._typed():
            try:
                chunk = self._stamp_chunk(table, offset)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise SourceError(
                    f"{self.label}: rows do not match the schema the source was built with "
                    f"({exc}); build the source again"
                ) from exc
            offset += table.num_rows
            yield chunk

    def _read_stamped(self) -> Iterator[pa.Table]:
        """The stamped rows, chunk by chunk, checked against the build's fingerprint."""
        self._check_unchanged()
        yield from self._stamped_chunks(self._schema)
        self._check_unchanged()

    def _check_unchanged(self) -> None:
        if self._files is None:
            return
        now = self._fingerprint()
        if now != self._files:
            which = _changes(self._location(), self._files, now or ())
            raise SourceError(
                f"{self.label}: its data changed after the source was built ({which}); "
                "build the source again to read the new rows under their own identity"
            )

    # ------------------------------------------------------------------ identity
    def identity_structure(self) -> Any:
        return {
            "source_id": self._source_id,
            "tag_columns": sorted(self._tag_schema),
            "table": self._content_hash,
        }


def _changes(path: str | None, before: tuple[FileStat, ...], after: tuple[FileStat, ...]) -> str:
    """Which files differ between two fingerprints, named for a message: the file (a
    one-file source) or, for a directory, up to three files each changed, added and removed,
    relative to it."""
    old = {stat[0]: stat for stat in before}
    new = {stat[0]: stat for stat in after}
    groups = {
        "changed": [name for name in new if name in old and new[name] != old[name]],
        "added": [name for name in new if name not in old],
        "removed": [name for name in old if name not in new],
    }
    parts = []
    for what, names in groups.items():
        if not names:
            continue
        shown = [path if name == "." and path is not None else name for name in names[:3]]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        parts.append(f"{what}: {', '.join(repr(n) for n in shown)}{more}")
    where = f" under {path!r}" if path is not None and "." not in old else ""
    return "; ".join(parts) + where if parts else "its files changed"


def or_empty(
    chunks: Iterable[pa.Table | pa.RecordBatch], schema: pa.Schema
) -> Iterator[pa.Table | pa.RecordBatch]:
    """``chunks``, or one empty table of ``schema`` if there are none (an empty input still
    gives its columns and types)."""
    empty = True
    for chunk in chunks:
        empty = False
        yield chunk
    if empty:
        yield schema.empty_table()


def _merge_nullable(a: pa.Schema, b: pa.Schema) -> pa.Schema:
    """``a`` with every field nullable that is nullable in ``b`` (same names and types
    but for the nullable flags, at any depth)."""
    return pa.schema([_merge_field(x, y) for x, y in zip(a, b, strict=True)])


def _merge_field(a: pa.Field, b: pa.Field) -> pa.Field:
    t, u = a.type, b.type
    if pa.types.is_struct(t):
        merged: pa.DataType = pa.struct(
            [_merge_field(t.field(i), u.field(i)) for i in range(t.num_fields)]
        )
    elif pa.types.is_map(t):
        merged = pa.map_(
            _merge_field(t.key_field, u.key_field), _merge_field(t.item_field, u.item_field)
        )
    elif pa.types.is_large_list(t):
        merged = pa.large_list(_merge_field(t.value_field, u.value_field))
    elif pa.types.is_fixed_size_list(t):
        merged = pa.list_(_merge_field(t.value_field, u.value_field), t.list_size)
    elif pa.types.is_list(t):
        merged = pa.list_(_merge_field(t.value_field, u.value_field))
    else:
        merged = t
    return pa.field(a.name, merged, nullable=a.nullable or b.nullable)
