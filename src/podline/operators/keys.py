"""Key forms: column values in a shape Polars can join on, sort by and compare, row by row.

Joins match rows, and commutative operators put rows (and values inside a row) into a
canonical order. Both need every column type to be comparable, and comparable the same way
whatever physical Arrow type holds it. A column's *key form* is:

* for integers, floats, booleans, strings, bytes and dates: the values themselves, cast to one
  physical type per logical type (so ``int32`` meets ``int64``, ``string`` meets
  ``large_string``);
* for every other type (timestamps, lists, structs, maps, files, the null type): the value's
  canonical podline hash (see ``podline.hashing``). Two values then match exactly when they are
  equal podline values; their order is deterministic though not meaningful.

Nulls stay null in every key form: they never match in a join and sort after every value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.hashing import row_hashes_hex

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "canonical_order",
    "is_increasing",
    "key_form",
    "key_frame",
    "lexicographic_less",
    "row_less",
    "zone_conflicts",
]

_PLAIN: tuple[tuple[Callable[[pa.DataType], bool], pa.DataType], ...] = (
    (pa.types.is_integer, pa.int64()),
    (pa.types.is_floating, pa.float64()),
    (pa.types.is_boolean, pa.bool_()),
    (
        lambda t: (
            pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
        ),
        pa.large_string(),
    ),
    (
        lambda t: (
            pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
            or pa.types.is_binary_view(t)
            or pa.types.is_fixed_size_binary(t)
        ),
        pa.large_binary(),
    ),
    (pa.types.is_date, pa.date32()),
)


def zone_conflicts(tables: Sequence[pa.Table], names: Sequence[str]) -> list[str]:
    """The columns of ``names`` that hold timestamps of different time zones (or zoned and
    naive ones) in ``tables``, each described with its zones: a timestamp's key form holds
    its zone, so such values never match, though podline's schemas show them all as
    ``datetime``. Sorted by column."""
    found = []
    for name in sorted(names):
        types = [t.schema.field(name).type for t in tables if name in t.column_names]
        zones = {t.tz for t in types if pa.types.is_timestamp(t)}
        if len(zones) > 1:
            shown = ", ".join(sorted("naive" if z is None else z for z in zones))
            found.append(f"{name!r} ({shown})")
    return found


def key_form(column: pa.Array | pa.ChunkedArray, name: str = "key") -> pa.Array | pa.ChunkedArray:
    """The key form of a column (see the module docs); ``name`` appears in hashing errors."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    for matches, target in _PLAIN:
        if matches(column.type):
            return column if column.type == target else column.cast(target)
    hashes = row_hashes_hex(pa.table({name: column}))
    if column.null_count:
        hashes = pc.if_else(column.is_valid(), hashes, pa.scalar(None, pa.large_string()))
    return hashes


def key_frame(table: pa.Table, names: Sequence[str], row_index: str | None = None) -> pl.DataFrame:
    """A polars frame of the key forms of ``names`` (same column names).

    ``row_index`` adds a column of row positions under that name, first; it also keeps the
    row count when ``names`` is empty.
    """
    import polars as pl

    keys = {name: key_form(table.column(name), name) for name in names}
    if row_index is not None:
        keys = {row_index: pa.array(np.arange(table.num_rows, dtype=np.uint32))} | keys
    frame = pl.from_arrow(pa.table(keys))
    assert isinstance(frame, pl.DataFrame)  # a table always converts to a frame
    return frame


def canonical_order(table: pa.Table, names: Sequence[str]) -> np.ndarray:
    """Row indices that sort ``table`` by the key forms of ``names``, in that priority."""
    import polars as pl

    if not names or table.num_rows == 0:
        return np.arange(table.num_rows)
    order = key_frame(table, names).select(pl.arg_sort_by(list(names), nulls_last=True))
    return order.to_series().to_numpy()


def lexicographic_less(left: Sequence[pl.Expr], right: Sequence[pl.Expr]) -> pl.Expr:
    """Per row: is the tuple ``left`` before the tuple ``right``? (over key forms)

    Nulls come after every value and NaN after every number, so the order is total, and it
    is the order ``canonical_order`` sorts by.
    """
    import polars as pl

    less: pl.Expr = pl.lit(False)
    for a, b in reversed(list(zip(left, right, strict=True))):
        before = (a < b).fill_null(False) | (a.is_not_null() & b.is_null())
        less = before | (a.eq_missing(b) & less)
    return less


def row_less(
    left: Sequence[pa.Array | pa.ChunkedArray], right: Sequence[pa.Array | pa.ChunkedArray]
) -> pa.Array:
    """``lexicographic_less`` of two aligned sequences of key-form columns, as a boolean array."""
    import polars as pl

    columns = {f"l{i}": a for i, a in enumerate(left)} | {f"r{i}": a for i, a in enumerate(right)}
    frame = pl.from_arrow(pa.table(columns))
    assert isinstance(frame, pl.DataFrame)
    less = lexicographic_less(
        [pl.col(f"l{i}") for i in range(len(left))], [pl.col(f"r{i}") for i in range(len(right))]
    )
    return frame.select(less).to_series().to_arrow()


def is_increasing(frame: pl.DataFrame, names: Sequence[str]) -> bool:
    """Whether the rows are strictly increasing by ``names``: sorted, and no key repeats."""
    import polars as pl

    if frame.height < 2:
        return True
    ahead = lexicographic_less(
        [pl.col(n) for n in names], [pl.col(n).shift(-1) for n in names]
    ).slice(0, frame.height - 1)
    return bool(frame.select(ahead.all()).item())
