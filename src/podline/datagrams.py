"""Datagrams: ``Tag`` and ``Packet``, light immutable views of one row.

A row of a stream is a pair (Tag, Packet). Both behave as read-only mappings of column name to
Python value and know their ``Schema``. Hidden columns ride along but stay out of ``keys()``,
``as_dict()`` and ``as_table()`` unless asked for:

* a ``Tag`` carries its system tags (which source records the row came from);
* a ``Packet`` carries its source info (for each value, a token naming the source record or the
  function call that produced it).

``content_hash()`` covers the visible columns only: their names, logical types and values (see
``podline.hashing.arrow_encoding``). A Packet built from a dict hashes exactly like the same row
inside a table.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, ValuesView
from typing import Any

import pyarrow as pa

from podline.columns import check_user_columns, source_info_column
from podline.conversion import infer_schema, table_from_columns
from podline.errors import InputValidationError, format_names
from podline.hashing import ContentHash, row_hash_strings
from podline.schema import Schema

__all__ = ["Datagram", "Packet", "Tag"]


class Datagram:
    """Shared behaviour of ``Tag`` and ``Packet``: an immutable, typed, one-row mapping."""

    __slots__ = ("_hash", "_schema", "_table", "_values")

    # A ContentHash, or its text while nobody asked for it (rows built in bulk).
    _hash: ContentHash | str | None

    def __init__(
        self,
        values: Mapping[str, Any],
        schema: Schema | Mapping[str, Any] | None = None,
        *,
        content_hash: ContentHash | str | None = None,
        validate: bool = True,
    ) -> None:
        """Build a datagram; ``validate=False`` skips checking values against the schema.

        Streams pass ``validate=False`` because their values come from typed tables.
        """
        check_user_columns(values)
        if schema is None:
            schema = infer_schema({k: [v] for k, v in values.items()})
        elif not isinstance(schema, Schema):
            schema = Schema(schema)
        if set(values) != set(schema):
            missing, extra = set(schema) - set(values), set(values) - set(schema)
            raise InputValidationError(
                f"{type(self).__name__} values do not match its schema: "
                f"missing {format_names(missing) or 'none'}, extra {format_names(extra) or 'none'}"
            )
        self._values = dict(values)
        self._schema = schema
        if isinstance(content_hash, str):
            content_hash = ContentHash.parse(content_hash)
        self._hash = content_hash
        self._table: pa.Table | None = None
        if validate:
            self._table = self._build_table()

    # Read-only mapping behaviour
    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(
                f"{type(self).__name__} has no column {key!r}; "
                f"columns are {format_names(self._values)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._schema)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self._values.get(key, default)

    def values(self) -> ValuesView[Any]:
        """The visible values, in column order."""
        return {k: self._values[k] for k in self._schema}.values()

    def items(self) -> ItemsView[str, Any]:
        """The visible (column, value) pairs, in column order."""
        return {k: self._values[k] for k in self._schema}.items()

    def keys(self) -> tuple[str, ...]:
        """The visible column names, in column order."""
        return tuple(self._schema)

    def schema(self) -> Schema:
        """The schema of the visible columns."""
        return self._schema

    def as_dict(self) -> dict[str, Any]:
        """The visible columns as a new dict."""
        return {k: self._values[k] for k in self._schema}

    def as_table(self) -> pa.Table:
        """The visible columns as a typed one-row Arrow table."""
        if self._table is None:
            self._table = self._build_table()
        return self._table

    def _build_table(self) -> pa.Table:
        try:
            return table_from_columns({k: [self._values[k]] for k in self._schema}, self._schema)
        except InputValidationError as exc:
            raise InputValidationError(f"{type(self).__name__}: {exc}") from exc

    def content_hash(self) -> ContentHash:
        """The hash of the visible columns' names, logical types and values."""
        if self._hash is None:
            self._hash = ContentHash.parse(row_hash_strings(self.as_table())[0].as_py())
        elif isinstance(self._hash, str):  # known as text (see ``Packet.of_row``)
            self._hash = ContentHash.parse(self._hash)
        return self._hash

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Datagram)
        return self._schema == other._schema and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return int.from_bytes(self.content_hash().digest[:8], "little")

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={self._values[k]!r}" for k in self._schema)
        return f"{type(self).__name__}({inner})"


Mapping.register(Datagram)


class Tag(Datagram):
    """The identifying part of a row: tag columns plus hidden system tags."""

    __slots__ = ("_system_tags",)

    def __init__(
        self,
        values: Mapping[str, Any],
        schema: Schema | Mapping[str, Any] | None = None,
        *,
        system_tags: Mapping[str, Any] | None = None,
        content_hash: ContentHash | str | None = None,
        validate: bool = True,
    ) -> None:
        super().__init__(values, schema, content_hash=content_hash, validate=validate)
        self._system_tags = dict(system_tags or {})

    @classmethod
    def of_row(cls, values: dict[str, Any], schema: Schema, system_tags: dict[str, Any]) -> Tag:
        """A tag from one row of a typed table, taking ownership of the dicts given: no
        checks and no copies (streams build one per row, and the checks cost far more than
        the row)."""
        tag = cls.__new__(cls)
        tag._values, tag._schema, tag._system_tags = values, schema, system_tags
        tag._hash = tag._table = None
        return tag

    def system_tags(self) -> dict[str, Any]:
        """A copy of the hidden system tags (column name -> value)."""
        return dict(self._system_tags)

    def keys(self, *, system_tags: bool = False) -> tuple[str, ...]:
        """Tag column names; with ``system_tags=True`` the system-tag columns follow."""
        visible = tuple(self._schema)
        return visible + tuple(self._system_tags) if system_tags else visible

    def as_dict(self, *, system_tags: bool = False) -> dict[str, Any]:
        """Tag values as a dict, optionally with the system tags."""
        out = super().as_dict()
        if system_tags:
            out.update(self._system_tags)
        return out

    def as_table(self, *, system_tags: bool = False) -> pa.Table:
        """A one-row table of the tag, optionally with system-tag columns."""
        table = super().as_table()
        if system_tags:
            for name, value in self._system_tags.items():
                table = table.append_column(name, _hidden_array(value))
        return table


class Packet(Datagram):
    """The payload of a row: packet columns plus hidden per-column source info."""

    __slots__ = ("_source_info",)

    def __init__(
        self,
        values: Mapping[str, Any],
        schema: Schema | Mapping[str, Any] | None = None,
        *,
        source_info: Mapping[str, str | None] | None = None,
        content_hash: ContentHash | str | None = None,
        validate: bool = True,
    ) -> None:
        super().__init__(values, schema, content_hash=content_hash, validate=validate)
        info = dict(source_info or {})
        unknown = set(info) - set(self._schema)
        if unknown:
            raise InputValidationError(
                f"source info given for unknown packet column(s) {format_names(unknown)}"
            )
        self._source_info = {k: info.get(k) for k in self._schema}

    @classmethod
    def of_row(
        cls,
        values: dict[str, Any],
        schema: Schema,
        source_info: dict[str, str | None],
        content_hash: str | None,
    ) -> Packet:
        """A packet from one row of a typed table, taking ownership of the dicts given (see
        ``Tag.of_row``); ``content_hash`` is parsed when first asked for."""
        packet = cls.__new__(cls)
        packet._values, packet._schema, packet._source_info = values, schema, source_info
        packet._hash, packet._table = content_hash, None
        return packet

    def source_info(self) -> dict[str, str | None]:
        """For every packet column, the token naming what produced its value (or None)."""
        return dict(self._source_info)

    def as_dict(self, *, source_info: bool = False) -> dict[str, Any]:
        """Packet values as a dict, optionally with ``__source:<column>`` entries."""
        out = super().as_dict()
        if source_info:
            out.update({source_info_column(k): v for k, v in self._source_info.items()})
        return out

    def as_table(self, *, source_info: bool = False) -> pa.Table:
        """A one-row table of the packet, optionally with source-info columns."""
        table = super().as_table()
        if source_info:
            for name, token in self._source_info.items():
                table = table.append_column(source_info_column(name), _hidden_array(token))
        return table


def _hidden_array(value: Any) -> pa.Array:
    """A one-row array of a hidden value: a string, or a list of strings once batched."""
    return pa.array([value], _hidden_type(value))


def _hidden_type(value: Any) -> pa.DataType:
    if isinstance(value, list):
        present = [v for v in value if v is not None]
        return pa.large_list(_hidden_type(present[0] if present else None))
    return pa.large_string()
