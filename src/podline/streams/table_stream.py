"""``TableStream``: a stream backed by one Arrow table, and the helpers every stream shares.

The table holds user columns (tags and packets) and hidden columns (system tags, source info,
meta) named per ``podline.columns``. Columns are stored in a fixed order: tags, packets,
system tags, source info, meta. Every packet column has a source-info column; one the input
lacks is added, filled with nulls (unknown provenance).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import (
    CONTENT_HASH_COLUMN,
    column_names,
    source_info_column,
    source_info_target,
    split_columns,
)
from podline.conversion import column_to_python
from podline.datagrams import Packet, Tag
from podline.errors import InputValidationError, format_names
from podline.hashing import IdentityMixin, hash_table, logical_type, row_hash_strings
from podline.runtime import paused_gc
from podline.schema import PodType, Schema, arrow_type, is_optional, type_name
from podline.streams.base import Stream
from podline.streams.display import Showable, Shown, render_html, render_text

if TYPE_CHECKING:
    import polars as pl

    from podline.streams.invocation import ProducedStream

__all__ = ["StreamMixin", "TableStream"]


class StreamMixin:
    """Conversions and display shared by every stream, built on ``as_table``/``output_schema``.

    Whatever mixes it in must satisfy the ``Stream`` protocol.
    """

    def __iter__(self: Stream) -> Iterator[tuple[Tag, Packet]]:
        return self.iter_packets()

    def to_polars(self: Stream, **options: Any) -> pl.DataFrame:
        """The table (see ``as_table`` for options) as a polars DataFrame."""
        import polars as pl

        frame = pl.from_arrow(self.as_table(**options))
        assert isinstance(frame, pl.DataFrame)
        return frame

    def to_pandas(self: Stream, **options: Any) -> Any:
        """The table (see ``as_table`` for options) as a pandas DataFrame."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install 'podline[pandas]'") from None
        return self.as_table(**options).to_pandas()

    # ------------------------------------------------------------------ operators
    # Operators sit above streams in the layering, so each method imports its operator when
    # called. The defaults are those of the operator classes.

    def join(self: Stream, *others: Stream, label: str | None = None) -> ProducedStream:
        """``Join()(self, *others)``: the inner join on shared tag columns."""
        from podline.operators import Join

        return Join()(self, *others, label=label)

    def merge_join(self: Stream, other: Stream, *, label: str | None = None) -> ProducedStream:
        """``MergeJoin()(self, other)``: a join that collects shared packet columns as lists."""
        from podline.operators import MergeJoin

        return MergeJoin()(self, other, label=label)

    def semi_join(self: Stream, other: Stream, *, label: str | None = None) -> ProducedStream:
        """``SemiJoin()(self, other)``: the rows of this stream whose tags ``other`` has."""
        from podline.operators import SemiJoin

        return SemiJoin()(self, other, label=label)

    def batch(
        self: Stream,
        batch_size: int = 0,
        drop_partial: bool = False,
        *,
        label: str | None = None,
    ) -> ProducedStream:
        """``Batch(batch_size, drop_partial)(self)``: rows grouped into list columns."""
        from podline.operators import Batch

        return Batch(batch_size, drop_partial)(self, label=label)

    def map_tags(
        self: Stream,
        name_map: Mapping[str, str],
        drop_unmapped: bool = False,
        strict: bool = True,
        *,
        label: str | None = None,
    ) -> ProducedStream:
        """``MapTags(name_map, drop_unmapped, strict)(self)``: rename tag columns."""
        from podline.operators import MapTags

        return MapTags(name_map, drop_unmapped, strict)(self, label=label)

    def map_packets(
        self: Stream,
        name_map: Mapping[str, str],
        drop_unmapped: bool = False,
        strict: bool = True,
        *,
        label: str | None = None,
    ) -> ProducedStream:
        """``MapPackets(name_map, drop_unmapped, strict)(self)``: rename packet columns."""
        from podline.operators import MapPackets

        return MapPackets(name_map, drop_unmapped, strict)(self, label=label)

    def select_tag_columns(
        self: Stream, columns: str | Iterable[str], strict: bool = True, *, label: str | None = None
    ) -> ProducedStream:
        """``SelectTagColumns(columns, strict)(self)``: keep only these tag columns."""
        from podline.operators import SelectTagColumns

        return SelectTagColumns(columns, strict)(self, label=label)

    def select_packet_columns(
        self: Stream, columns: str | Iterable[str], strict: bool = True, *, label: str | None = None
    ) -> ProducedStream:
        """``SelectPacketColumns(columns, strict)(self)``: keep only these packet columns."""
        from podline.operators import SelectPacketColumns

        return SelectPacketColumns(columns, strict)(self, label=label)

    def drop_tag_columns(
        self: Stream, columns: str | Iterable[str], strict: bool = True, *, label: str | None = None
    ) -> ProducedStream:
        """``DropTagColumns(columns, strict)(self)``: remove these tag columns."""
        from podline.operators import DropTagColumns

        return DropTagColumns(columns, strict)(self, label=label)

    def drop_packet_columns(
        self: Stream, columns: str | Iterable[str], strict: bool = True, *, label: str | None = None
    ) -> ProducedStream:
        """``DropPacketColumns(columns, strict)(self)``: remove these packet columns."""
        from podline.operators import DropPacketColumns

        return DropPacketColumns(columns, strict)(self, label=label)

    def filter(
        self: Stream,
        *predicates: pl.Expr,
        constraints: Mapping[str, Any] | None = None,
        label: str | None = None,
    ) -> ProducedStream:
        """``Filter(*predicates, constraints=constraints)(self)``: keep matching rows."""
        from podline.operators import Filter

        return Filter(*predicates, constraints=constraints)(self, label=label)

    # ------------------------------------------------------------------ display
    # Showing a stream computes nothing (see ``podline.streams.display``).

    def _shown(self) -> Shown:
        """What this stream can show without computing (subclasses say more)."""
        return Shown(type(self).__name__, None, None, pending="rows not shown")

    def __repr__(self: Showable) -> str:
        return render_text(self)

    def _repr_html_(self: Showable) -> str:
        return render_html(self)


class TableStream(StreamMixin, IdentityMixin):
    """An immutable stream over an Arrow table.

    ``tag_columns`` names the tag columns; every other user column is a packet column. Hidden
    columns are recognised by name. Errors name the missing or reserved columns.
    """

    def __init__(
        self,
        table: pa.Table | pa.RecordBatch,
        tag_columns: str | Iterable[str] = (),
        *,
        label: str | None = None,
        types: Mapping[str, PodType] | None = None,
    ) -> None:
        """``types`` gives the Python type of some user columns where the Arrow type alone
        cannot (a dataclass rather than a generic record); it must match the column's
        structure."""
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        groups = split_columns(table.column_names)
        tags = column_names(tag_columns)
        missing = [t for t in tags if t not in groups.data]
        if missing:
            raise InputValidationError(
                f"tag column(s) {format_names(missing)} not found; "
                f"columns are {format_names(groups.data)}"
            )
        packets = tuple(c for c in groups.data if c not in tags)
        if not packets:
            raise InputValidationError(
                "a stream needs at least one packet column; every column "
                f"({format_names(groups.data) or 'none'}) is a tag column"
            )
        orphans = [c for c in groups.source_info if source_info_target(c) not in packets]
        if orphans:
            raise InputValidationError(
                f"source-info column(s) {format_names(orphans)} describe no packet column"
            )
        for column in packets:
            name = source_info_column(column)
            if name not in groups.source_info:
                table = table.append_column(name, pa.nulls(table.num_rows, pa.large_string()))
        info = tuple(source_info_column(c) for c in packets)
        self._table = table.select([*tags, *packets, *groups.system_tags, *info, *groups.meta])
        self._tags = tags
        self._packets = packets
        self._system_tags = groups.system_tags
        self._source_info = info
        self._meta = groups.meta
        user = pa.schema([self._table.schema.field(c) for c in (*tags, *packets)])
        schema = _with_types(Schema.from_arrow(user), types)
        self._tag_schema = schema.select(tags)
        self._packet_schema = schema.select(packets)
        self._rows: list[tuple[Tag, Packet]] | None = None
        self._packet_hashes: pa.Array | None = None
        self.label = label or type(self).__name__

    # ------------------------------------------------------------------ schema
    def keys(self, *, system_tags: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
        tags = self._tags + self._system_tags if system_tags else self._tags
        return tags, self._packets

    def output_schema(self, *, system_tags: bool = False) -> tuple[Schema, Schema]:
        if not system_tags:
            return self._tag_schema, self._packet_schema
        system = Schema.from_arrow(self._table.select(list(self._system_tags)).schema)
        return self._tag_schema.merge(system), self._packet_schema

    def _shown(self) -> Shown:
        return Shown(type(self).__name__, self, self.output_schema())

    def __len__(self) -> int:
        return self._table.num_rows

    # ------------------------------------------------------------------ data
    def packet_hashes(self) -> pa.Array:
        """Every row's packet content hash (``pod3:<hex>`` strings), computed in one call."""
        if self._packet_hashes is None:
            self._packet_hashes = row_hash_strings(self._table, self._packets)
        return self._packet_hashes

    def as_table(
        self,
        *,
        system_tags: bool = False,
        source_info: bool = False,
        content_hash: bool | str = False,
        sort_by_tags: bool = False,
        all_info: bool = False,
    ) -> pa.Table:
        if all_info:
            system_tags = source_info = True
            content_hash = content_hash or True
        columns = [*self._tags, *self._packets]
        if system_tags:
            columns += self._system_tags
        if source_info:
            columns += self._source_info
        if all_info:
            columns += self._meta
        name = content_hash if isinstance(content_hash, str) else CONTENT_HASH_COLUMN
        if content_hash:
            # A stored hash column (say, from an earlier as_table) is replaced by a fresh one.
            if name in self._table.column_names and name != CONTENT_HASH_COLUMN:
                raise InputValidationError(f"content-hash column name {name!r} is already in use")
            columns = [c for c in columns if c != name]
        table = self._table.select(columns)
        if content_hash:
            table = table.append_column(name, self.packet_hashes())
        if sort_by_tags:
            keys = [*self._tags, *(self._system_tags if system_tags else ())]
            table = table.take(_sort_indices(table, keys))
        return table

    def iter_chunks(self, rows: int) -> Iterator[TableStream]:
        """The rows in pieces of at most ``rows`` rows, every hidden column included (the
        whole stream when it is that short; one empty piece when it is empty)."""
        if self._table.num_rows <= rows:
            yield self
            return
        types = {**self._tag_schema, **self._packet_schema}
        for start in range(0, self._table.num_rows, rows):
            piece = self._table.slice(start, rows)
            yield TableStream(piece, self._tags, label=self.label, types=types)

    def iter_packets(self) -> Iterator[tuple[Tag, Packet]]:
        if self._rows is None:
            self._rows = self._build_rows()
        return iter(self._rows)

    def _build_rows(self) -> list[tuple[Tag, Packet]]:
        t = self._table
        tag_values = {c: column_to_python(t.column(c), self._tag_schema[c]) for c in self._tags}
        packet_values = {
            c: column_to_python(t.column(c), self._packet_schema[c]) for c in self._packets
        }
        system = {c: t.column(c).to_pylist() for c in self._system_tags}
        info = {
            c: t.column(info).to_pylist()
            for c, info in zip(self._packets, self._source_info, strict=True)
        }
        hashes = self._packet_hashes.to_pylist() if self._packet_hashes is not None else None
        n = t.num_rows
        tag_rows = _dict_rows(tag_values, n)
        system_rows = _dict_rows(system, n)
        packet_rows = _dict_rows(packet_values, n)
        info_rows = _dict_rows(info, n)
        tag_schema, packet_schema = self._tag_schema, self._packet_schema
        with paused_gc():  # several acyclic objects per row (see paused_gc)
            return [
                (
                    Tag.of_row(tag_values_i, tag_schema, system_i),
                    Packet.of_row(packet_i, packet_schema, info_i, hashes[i] if hashes else None),
                )
                for i, (tag_values_i, system_i, packet_i, info_i) in enumerate(
                    zip(tag_rows, system_rows, packet_rows, info_rows, strict=True)
                )
            ]

    # ------------------------------------------------------------------ identity
    def identity_structure(self) -> Any:
        return {"tag_columns": sorted(self._tags), "table": hash_table(self._table)}

    def pipeline_identity_structure(self) -> Any:
        return {"tags": self._tag_schema, "packets": self._packet_schema}


def _with_types(schema: Schema, types: Mapping[str, PodType] | None) -> Schema:
    """``schema`` with the given columns' types replaced by structurally equal ones."""
    if not types:
        return schema
    unknown = set(types) - set(schema)
    if unknown:
        raise InputValidationError(f"types given for unknown column(s) {format_names(unknown)}")
    clashes = sorted(
        f"{name!r} ({type_name(schema[name])} vs {type_name(tp)})"
        for name, tp in types.items()
        if logical_type(arrow_type(tp)) != logical_type(arrow_type(schema[name]))
        or is_optional(tp) != is_optional(schema[name])
    )
    if clashes:
        raise InputValidationError(f"types do not match the columns: {', '.join(clashes)}")
    return Schema({name: types.get(name, tp) for name, tp in schema.items()})


def _sort_indices(table: pa.Table, keys: Sequence[str]) -> pa.Array:
    """Row order by ``keys`` (nulls last). Unsortable (nested) columns sort by their hash."""
    if not keys or table.num_rows == 0:
        return pa.array(np.arange(table.num_rows))
    sortable = [k for k in keys if _is_sortable(table.schema.field(k).type)]
    nested = [k for k in keys if k not in sortable]
    sort_keys = [(k, "ascending") for k in sortable]
    if nested:
        table = table.append_column("__sort_hash", row_hash_strings(table, nested))
        sort_keys.append(("__sort_hash", "ascending"))
    return pc.sort_indices(table, sort_keys=sort_keys)  # nulls sort last by default


def _is_sortable(t: pa.DataType) -> bool:
    return not (pa.types.is_nested(t) or pa.types.is_dictionary(t) or pa.types.is_null(t))


def _dict_rows(columns: dict[str, list[Any]], n: int) -> Iterator[dict[str, Any]]:
    """One dict per row from per-column value lists."""
    if not columns:
        return ({} for _ in range(n))
    names = tuple(columns)
    return (dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True))
