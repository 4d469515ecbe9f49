"""Column operators: select, drop and rename tag or packet columns.

* ``SelectTagColumns`` / ``SelectPacketColumns`` keep the named columns, ``DropTagColumns`` /
  ``DropPacketColumns`` remove them. Columns keep their input order; the names form a set, so
  their order does not enter the identity. With ``strict=True`` (the default) a name that is
  not a column of that kind is an error; with ``strict=False`` it is ignored.
* ``MapTags`` / ``MapPackets`` rename columns by ``name_map``; ``drop_unmapped=True`` also
  drops the columns of that kind the map does not name. A rename onto a name that another
  column keeps (tag or packet) is an error; with ``strict=True`` so is a map entry for a
  column that does not exist.

Source info follows packet columns: selecting, dropping or renaming a packet column does the
same to its source-info column (a renamed column keeps its tokens unchanged, as they name
the column the value was produced as). System tags are never touched, so a row keeps its
lineage through all of these. A stream needs at least one packet column, so removing every
packet column is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import pyarrow as pa

from podline.columns import check_user_columns, column_names, source_info_column
from podline.errors import ReservedColumnError, format_names
from podline.operators.base import (
    Operator,
    StreamingStrategy,
    StreamSchema,
    unknown_columns,
)
from podline.schema import Schema
from podline.streams import Stream

__all__ = [
    "DropPacketColumns",
    "DropTagColumns",
    "MapPackets",
    "MapTags",
    "SelectPacketColumns",
    "SelectTagColumns",
]

Kind = Literal["tag", "packet"]


def _part(schema: StreamSchema, kind: Kind) -> Schema:
    return schema.tags if kind == "tag" else schema.packets


def _with_part(schema: StreamSchema, kind: Kind, part: Schema) -> StreamSchema:
    if kind == "tag":
        return StreamSchema(part, schema.packets, schema.system_tags)
    return StreamSchema(schema.tags, part, schema.system_tags)


class _ColumnSubset(Operator):
    """Shared logic of the select and drop operators."""

    kind: ClassVar[Kind]
    keep_named: ClassVar[bool]
    order_sensitive = False

    def streaming_strategy(self, inputs: int) -> StreamingStrategy:
        return StreamingStrategy.PER_CHUNK

    def __init__(self, columns: str | Iterable[str], strict: bool = True) -> None:
        names = column_names(columns)
        repeated = {n for n in names if names.count(n) > 1}
        if repeated:
            raise self._error(f"column(s) {format_names(repeated)} are named more than once")
        self.columns = tuple(sorted(names))
        self.strict = bool(strict)

    def parameters(self) -> dict[str, Any]:
        return {"columns": self.columns, "strict": self.strict}

    def _plan(self, inputs: Sequence[Stream], schemas: Sequence[StreamSchema]) -> StreamSchema:
        (schema,) = schemas
        part = _part(schema, self.kind)
        missing = [n for n in self.columns if n not in part]
        if missing and self.strict:
            raise unknown_columns(self.label, self.kind, missing, schema)
        kept = [n for n in part if (n in self.columns) == self.keep_named]
        if self.kind == "packet" and not kept:
            raise self._error(
                f"would remove every packet column ({format_names(part)}); "
                "a stream needs at least one"
            )
        return _with_part(schema, self.kind, part.select(kept))

    def _compute(
        self, inputs: Sequence[Stream], tables: Sequence[pa.Table], out: StreamSchema
    ) -> pa.Table:
        return tables[0]  # the base selects the planned columns, source info included


class SelectTagColumns(_ColumnSubset):
    """Keep only the named tag columns (system tags always stay)."""

    kind = "tag"
    keep_named = True


class SelectPacketColumns(_ColumnSubset):
    """Keep only the named packet columns and their source info."""

    kind = "packet"
    keep_named = True


class DropTagColumns(_ColumnSubset):
    """Remove the named tag columns (system tags always stay)."""

    kind = "tag"
    keep_named = False


class DropPacketColumns(_ColumnSubset):
    """Remove the named packet columns and their source info."""

    kind = "packet"
    keep_named = False


class _ColumnRename(Operator):
    """Shared logic of ``MapTags`` and ``MapPackets``."""

    kind: ClassVar[Kind]
    order_sensitive = False

    def streaming_strategy(self, inputs: int) -> StreamingStrategy:
        return StreamingStrategy.PER_CHUNK

    def __init__(
        self, name_map: Mapping[str, str], drop_unmapped: bool = False, strict: bool = True
    ) -> None:
        self.name_map = dict(name_map)
        targets = list(self.name_map.values())
        repeated = {t for t in targets if targets.count(t) > 1}
        if repeated:
            raise self._error(f"several columns would be renamed to {format_names(repeated)}")
        try:
            check_user_columns(targets)
        except ReservedColumnError as exc:
            raise self._error(str(exc)) from None
        self.drop_unmapped = bool(drop_unmapped)
        self.strict = bool(strict)

    def parameters(self) -> dict[str, Any]:
        return {
            "name_map": self.name_map,
            "drop_unmapped": self.drop_unmapped,
            "strict": self.strict,
        }

    def _layout(self, schema: StreamSchema) -> tuple[dict[str, str], list[str]]:
        """The renames that apply to ``schema`` and the columns of this kind that remain."""
        part = _part(schema, self.kind)
        missing = [n for n in self.name_map if n not in part]
        if missing and self.strict:
            raise unknown_columns(self.label, self.kind, missing, schema)
        renames = {old: new for old, new in self.name_map.items() if old in part}
        kept = [n for n in part if n in renames or not self.drop_unmapped]
        return renames, kept

    def _plan(self, inputs: Sequence[Stream], schemas: Sequence[StreamSchema]) -> StreamSchema:
        (schema,) = schemas
        part = _part(schema, self.kind)
        renames, kept = self._layout(schema)
        if not kept and self.kind == "packet":
            raise self._error(
                f"drop_unmapped would remove every packet column ({format_names(part)}); "
                "a stream needs at least one"
            )
        other = schema.packets if self.kind == "tag" else schema.tags
        names = [renames.get(n, n) for n in kept] + list(other)
        clashes = {n for n in names if names.count(n) > 1}
        if clashes:
            raise self._error(
                f"renaming would make duplicate column name(s) {format_names(clashes)}"
            )
        return _with_part(schema, self.kind, part.select(kept).rename(renames))

    def _compute(
        self, inputs: Sequence[Stream], tables: Sequence[pa.Table], out: StreamSchema
    ) -> pa.Table:
        (table,) = tables
        schema = StreamSchema.of(inputs[0])
        renames, kept = self._layout(schema)
        # Unmapped columns go first, so that their names are free for the renames.
        dropped = [n for n in _part(schema, self.kind) if n not in kept]
        if self.kind == "packet":
            dropped += [source_info_column(n) for n in dropped]
            renames |= {source_info_column(o): source_info_column(n) for o, n in renames.items()}
        table = table.drop_columns(dropped)
        return table.rename_columns([renames.get(c, c) for c in table.column_names])


class MapTags(_ColumnRename):
    """Rename tag columns (system tags are never renamed)."""

    kind = "tag"


class MapPackets(_ColumnRename):
    """Rename packet columns; their source-info columns follow, tokens unchanged."""

    kind = "packet"
