"""Sources built from Python objects: ``DictSource`` (rows as dicts) and ``ListSource``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from podline.columns import column_names
from podline.conversion import infer_type, table_from_columns, table_from_rows
from podline.errors import InexactValueError, InputValidationError, SourceError
from podline.schema import PodType, Schema
from podline.sources.base import Source

__all__ = ["DictSource", "ListSource"]


def _row_tag(
    error: InputValidationError,
    row_of: Callable[[int], Mapping[str, Any]],
    tag_columns: Sequence[str],
) -> str:
    """ ", in the row with tag {...}" for an error that names one row, else ""."""
    if not isinstance(error, InexactValueError) or not tag_columns:
        return ""
    row = row_of(error.row)
    return f", in the row with tag { ({c: row.get(c) for c in tag_columns}) }"


class DictSource(Source):
    """Rows given as a list of dicts with identical keys.

    Types are inferred from the values (``None`` makes a column ``T | None``) unless ``schema``
    gives them; an empty list needs a ``schema``.

    >>> DictSource([{"id": 1, "x": 0.5}, {"id": 2, "x": 1.5}], tag_columns=["id"])
    """

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        tag_columns: str | Iterable[str] = (),
        *,
        schema: Mapping[str, PodType] | None = None,
        source_id: str | None = None,
        record_id_column: str | None = None,
        label: str | None = None,
    ) -> None:
        rows = list(rows)
        try:
            table = table_from_rows(rows, schema)
        except InputValidationError as exc:
            where = _row_tag(exc, lambda row: rows[row], column_names(tag_columns))
            raise SourceError(f"{label or type(self).__name__}: {exc}{where}") from exc
        super().__init__(
            table,
            tag_columns,
            source_id=source_id,
            record_id_column=record_id_column,
            label=label,
            nullable="schema" if schema is not None else "infer",
        )


class ListSource(Source):
    """A list of values as one packet column ``name``, tagged by ``tag_function``.

    ``tag_function(value)`` returns the tag columns of a value as a dict; by default each value
    is tagged with its position, ``{"index": i}``. ``value_type`` fixes the packet column's type
    (inferred otherwise).

    >>> ListSource("path", ["a.txt", "b.txt"], tag_function=lambda p: {"name": p[:-4]})
    """

    def __init__(
        self,
        name: str,
        values: Sequence[Any],
        tag_function: Callable[[Any], Mapping[str, Any]] | None = None,
        *,
        value_type: PodType | None = None,
        tag_schema: Mapping[str, PodType] | None = None,
        source_id: str | None = None,
        label: str | None = None,
    ) -> None:
        label = label or type(self).__name__
        values = list(values)
        if tag_function is None:
            tags: list[Mapping[str, Any]] = [{"index": i} for i in range(len(values))]
            tag_schema = tag_schema or {"index": int}
        else:
            tags = [dict(tag_function(v)) for v in values]
        if name in (tag_schema or (tags[0] if tags else {})):
            raise SourceError(f"{label}: packet column {name!r} is also a tag column")
        try:
            tag_table = table_from_rows(tags, tag_schema)
        except InputValidationError as exc:
            raise SourceError(f"{label}: tag_function results: {exc}") from exc
        value_type = value_type if value_type is not None else infer_type(values, name)
        try:
            packet_table = table_from_columns({name: values}, Schema({name: value_type}))
        except InputValidationError as exc:
            where = _row_tag(exc, lambda row: tags[row], list(tags[0]) if tags else [])
            raise SourceError(f"{label}: {exc}{where}") from exc
        table = tag_table.append_column(packet_table.schema.field(0), packet_table.column(0))
        # The table is typed by podline itself (given or inferred types), so keep its
        # nullable flags: a declared ``value_type``/``tag_schema`` of ``T | None`` stays.
        super().__init__(
            table, tag_table.column_names, source_id=source_id, label=label, nullable="schema"
        )
