"""Sources over in-memory tables: ``ArrowTableSource`` and ``DataFrameSource``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from podline.conversion import table_from_rows
from podline.errors import InputValidationError, SourceError
from podline.sources.base import NullableMode, Source

__all__ = ["ArrowTableSource", "DataFrameSource"]


class ArrowTableSource(Source):
    """An Arrow table (or record batch) as a source.

    By default a column is nullable only if it holds nulls (``pa.table`` marks every field
    nullable); pass ``nullable="schema"`` to keep the table's own flags.
    """

    def __init__(
        self,
        table: pa.Table | pa.RecordBatch,
        tag_columns: str | Iterable[str] = (),
        *,
        source_id: str | None = None,
        record_id_column: str | None = None,
        label: str | None = None,
        nullable: NullableMode = "infer",
    ) -> None:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if not isinstance(table, pa.Table):
            raise SourceError(
                f"ArrowTableSource needs a pyarrow Table or RecordBatch, got {type(table).__name__}"
            )
        super().__init__(
            table,
            tag_columns,
            source_id=source_id,
            record_id_column=record_id_column,
            label=label,
            nullable=nullable,
        )


class DataFrameSource(Source):
    """A polars or pandas DataFrame as a source (pandas' index is not included)."""

    def __init__(
        self,
        frame: Any,
        tag_columns: str | Iterable[str] = (),
        *,
        source_id: str | None = None,
        record_id_column: str | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(
            _frame_to_arrow(frame, label or type(self).__name__),
            tag_columns,
            source_id=source_id,
            record_id_column=record_id_column,
            label=label,
        )


def _unconvertible(frame: Any, label: str) -> SourceError:
    """Why a polars frame has no Arrow table, naming the first column that has none (polars
    types Arrow lacks, such as Int128: pyarrow cannot import them)."""
    for name in frame.columns:
        try:
            frame.get_column(name).to_arrow()
        except pa.ArrowException as exc:
            dtype = frame.schema[name]
            return SourceError(
                f"{label}: column {name!r} is a polars {dtype}, which Arrow (and so podline) "
                f"cannot read ({exc}); cast it first, e.g. "
                f"frame.with_columns(pl.col({name!r}).cast(pl.Int64)), or to pl.String to "
                "keep every digit"
            )
    return SourceError(f"{label}: the DataFrame cannot be converted to Arrow")


def _frame_to_arrow(frame: Any, label: str) -> pa.Table:
    if isinstance(frame, pa.Table | pa.RecordBatch):
        raise SourceError(
            f"{label}: DataFrameSource takes a polars or pandas DataFrame, got a pyarrow "
            f"{type(frame).__name__}; use ArrowTableSource(table, tag_columns) for Arrow data"
        )
    if hasattr(frame, "to_arrow") and hasattr(frame, "lazy"):  # polars
        try:
            table = frame.to_arrow()
        except pa.ArrowException as exc:
            raise _unconvertible(frame, label) from exc
        assert isinstance(table, pa.Table)
        return table
    if hasattr(frame, "to_dict") and hasattr(frame, "columns"):  # pandas
        try:
            return pa.Table.from_pandas(frame, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            # Object columns Arrow cannot type itself (paths, records): use podline's inference.
            try:
                return table_from_rows(frame.to_dict("records"))
            except InputValidationError as exc:
                raise SourceError(f"{label}: {exc}") from exc
    raise SourceError(
        f"{label}: expected a polars or pandas DataFrame, got {type(frame).__module__}."
        f"{type(frame).__qualname__}; for rows as dicts use DictSource, for an Arrow table "
        "ArrowTableSource"
    )
