"""``Source``: a stream with no upstream, and the one build step every source type shares.

Building a source from an Arrow table:

1. reject reserved column names (never drop them), check the tag columns exist and that at
   least one packet column remains, and check every column's type is supported;
2. normalize physical types to podline's canonical Arrow types and, by default, make a field
   nullable only if it holds nulls (``nullable="infer"``; ``"schema"`` keeps the input flags);
3. assign record ids: the row position (``"#0"``, ``"#1"``, ...) or the values of
   ``record_id_column``, which must be unique and non-null;
4. choose the source id: the one given, or the first 16 hex digits of the content hash of the
   user columns;
5. stamp system tags (source id, record id) and a source-info token per packet value.

Identity: the pipeline hash covers the tag and packet schemas only, so same-schema sources
share pipeline tables. The content hash covers the source id, the tag columns and every value
(record ids included): changing the data changes it even when ``source_id`` is fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import (
    check_user_columns,
    column_names,
    source_info_column,
    source_lineage,
    source_tokens,
)
from podline.columns import system_tag_columns as system_tag_names
from podline.conversion import map_entries, narrowed
from podline.errors import DuplicateRecordIdError, SourceError, format_names
from podline.hashing import hash_table, logical_type
from podline.schema import Schema, arrow_field, python_type
from podline.streams import DelegatingStream, TableStream

__all__ = ["NullableMode", "Source"]

NullableMode = Literal["infer", "schema"]
_SOURCE_ID_HEX_CHARS = 16


class Source(DelegatingStream):
    """Base class of every source: builds the stamped table once, then serves it.

    Subclasses turn their input into an Arrow table and call ``super().__init__``.
    """

    def __init__(
        self,
        table: pa.Table,
        tag_columns: str | Iterable[str] = (),
        *,
        source_id: str | None = None,
        record_id_column: str | None = None,
        label: str | None = None,
        nullable: NullableMode = "infer",
    ) -> None:
        self.label = label or type(self).__name__
        tags = column_names(tag_columns)
        packets = check_columns(self.label, table.column_names, tags)
        table = _canonical(table.select([*tags, *packets]), nullable)
        schema = Schema.from_arrow(table.schema)
        self._tag_schema = schema.select(tags)
        self._packet_schema = schema.select(packets)
        record_ids = self._record_ids(table, record_id_column)
        self._source_id = (
            source_id if source_id is not None else self._default_id(table, record_ids)
        )
        if not isinstance(self._source_id, str) or not self._source_id:
            raise SourceError(f"{self.label}: source_id must be a non-empty string")
        self._stream_table = TableStream(
            self._stamp(table, record_ids, packets), tags, label=self.label
        )

    # ------------------------------------------------------------------ build steps
    def _record_ids(self, table: pa.Table, column: str | None) -> pa.Array:
        if column is None:
            return positional_ids(0, table.num_rows)
        ids = column_ids(self.label, table, column)
        check_unique_ids(self.label, column, ids)
        return ids

    def _default_id(self, table: pa.Table, record_ids: pa.Array) -> str:
        keyed = table.append_column("__meta:record_id", record_ids)
        return hash_table(keyed).short(_SOURCE_ID_HEX_CHARS)

    def _stamp(self, table: pa.Table, record_ids: pa.Array, packets: Sequence[str]) -> pa.Table:
        return stamp(table, record_ids, packets, self._source_id, self.pipeline_hash().hex)

    # ------------------------------------------------------------------ stream
    def _stream(self) -> TableStream:
        return self._stream_table

    @property
    def source_id(self) -> str:
        """The id stamped into every row's system tags and source-info tokens."""
        return self._source_id

    # ------------------------------------------------------------------ identity
    @classmethod
    def identity_kind(cls) -> str:
        # How rows were loaded (dicts, CSV, Parquet, ...) is not part of their identity.
        return "Source"

    def identity_structure(self) -> Any:
        return {
            "source_id": self._source_id,
            "tag_columns": sorted(self._tag_schema),
            "table": hash_table(self._stream_table.as_table(system_tags=True, source_info=True)),
        }

    def pipeline_identity_structure(self) -> Any:
        return {"tags": self._tag_schema, "packets": self._packet_schema}


# --------------------------------------------------------------------------- build steps


def check_columns(label: str, names: Sequence[str], tags: Sequence[str]) -> list[str]:
    """The packet columns of a source with columns ``names`` and tag columns ``tags``,
    after checking the names (``SourceError`` naming what is wrong)."""
    check_user_columns(names)
    missing = [t for t in tags if t not in names]
    if missing:
        raise SourceError(
            f"{label}: tag column(s) {format_names(missing)} not found; "
            f"columns are {format_names(names)}"
        )
    if len(set(tags)) != len(tags):
        raise SourceError(f"{label}: tag columns repeat: {list(tags)!r}")
    packets = [c for c in names if c not in tags]
    if not packets:
        raise SourceError(
            f"{label}: no packet column; every column "
            f"({format_names(names) or 'none'}) is a tag column"
        )
    return packets


def positional_ids(start: int, count: int) -> pa.Array:
    """Record ids by row position: ``"#start"``, ``"#start+1"``, ... (built in Arrow: no
    Python object per row)."""
    numbers = pa.array(np.arange(start, start + count, dtype=np.int64)).cast(pa.large_string())
    hash_sign = pa.scalar("#", pa.large_string())
    return pc.binary_join_element_wise(hash_sign, numbers, pa.scalar("", pa.large_string()))


def column_ids(label: str, table: pa.Table, column: str) -> pa.Array:
    """The record ids ``column`` gives (non-null, as strings); uniqueness is checked apart
    (``check_unique_ids``), as a source read in chunks checks it over every chunk."""
    if column not in table.column_names:
        raise SourceError(
            f"{label}: record-id column {column!r} not found; "
            f"columns are {format_names(table.column_names)}"
        )
    values = table.column(column)
    if values.null_count:
        raise SourceError(f"{label}: record-id column {column!r} holds nulls")
    try:
        ids: pa.Array = values.cast(pa.large_string()).combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SourceError(
            f"{label}: record-id column {column!r} of type {values.type} "
            "cannot serve as ids; use a string or integer column"
        ) from exc
    return ids


def check_unique_ids(label: str, column: str, ids: pa.Array | pa.ChunkedArray) -> None:
    counts = pc.value_counts(ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
    if len(repeated):
        raise DuplicateRecordIdError(
            f"{label}: record-id column {column!r} repeats "
            f"{format_names(repeated.to_pylist()[:10])}"
        )


def stamp(
    table: pa.Table,
    record_ids: pa.Array,
    packets: Sequence[str],
    source_id: str,
    pipeline_hex: str,
) -> pa.Table:
    """``table`` with a source's hidden columns: system tags (source id, record id) and a
    source-info token per packet value (``pipeline_hex``: the source's pipeline hash)."""
    source_col, record_col = system_tag_names(source_lineage(pipeline_hex))
    n = table.num_rows
    table = table.append_column(
        pa.field(source_col, pa.large_string(), nullable=False),
        pa.repeat(pa.scalar(source_id, pa.large_string()), n),
    )
    table = table.append_column(pa.field(record_col, pa.large_string(), nullable=False), record_ids)
    for column in packets:
        tokens = source_tokens(source_id, record_ids, column)
        table = table.append_column(source_info_column(column), tokens)
    return table


# --------------------------------------------------------------------------- normalization


def _canonical(table: pa.Table, nullable: NullableMode) -> pa.Table:
    """Cast to canonical Arrow types; with ``"infer"``, nullable only where nulls occur.

    A column is cast only when its logical type stays the same and the cast is lossless (a
    zoned timestamp keeps its zone; nanoseconds that microseconds cannot hold stay).
    """
    pairs = [
        _canonical_column(field, column, nullable)
        for field, column in zip(table.schema, table.columns, strict=True)
    ]
    # narrowed, not cast by from_arrays: a tightened field is the column's type with nested
    # nulls forbidden, which Arrow's cast checks against nulls no row refers to as well.
    columns = [narrowed(c, f.type) for f, c in pairs]
    return pa.Table.from_arrays(columns, schema=pa.schema([f for f, _ in pairs]))


def _canonical_column(
    field: pa.Field, column: pa.ChunkedArray, nullable: NullableMode
) -> tuple[pa.Field, pa.ChunkedArray]:
    if nullable == "infer":
        field = _tighten(field, column)
    target = arrow_field(field.name, python_type(field)).with_nullable(field.nullable)
    if target.type == field.type or logical_type(target.type) != logical_type(field.type):
        return field, column
    try:
        return field.with_type(target.type), column.cast(target.type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return field, column  # keep the physical type; hashing treats both alike


def _tighten(field: pa.Field, column: pa.ChunkedArray) -> pa.Field:
    """The field with nullable flags (of nested items and fields too) set by the data."""
    has_nulls = column.null_count > 0
    t = field.type
    chunks = column.chunks

    def nested(child: pa.Field, arrays: list[pa.Array]) -> pa.Field:
        return _tighten(child, pa.chunked_array(arrays, child.type))

    if pa.types.is_list(t) or pa.types.is_large_list(t):
        make = pa.large_list if pa.types.is_large_list(t) else pa.list_
        new_type = make(nested(t.value_field, [c.flatten() for c in chunks]))
    elif pa.types.is_fixed_size_list(t):
        new_type = pa.list_(nested(t.value_field, [c.flatten() for c in chunks]), t.list_size)
    elif pa.types.is_map(t):
        entries = [map_entries(c) for c in chunks]
        key = nested(t.key_field, [e.field(0) for e in entries]).with_nullable(False)
        item = nested(t.item_field, [e.field(1) for e in entries])
        new_type = pa.map_(key, item)
    elif pa.types.is_struct(t):
        # The fields of the rows that hold a record: a null record's fields hold no values,
        # whatever its child arrays hold there (polars puts nulls, pyarrow zeros).
        held = [c.drop_null() if c.null_count else c for c in chunks]
        new_type = pa.struct(
            [nested(t.field(i), [c.field(i) for c in held]) for i in range(t.num_fields)]
        )
    else:
        new_type = t
    # A column of Arrow's null type holds nulls only, even with no rows to show one (a
    # header-only CSV file).
    return pa.field(field.name, new_type, nullable=has_nulls or pa.types.is_null(new_type))
