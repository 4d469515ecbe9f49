"""What every store can keep: the one rule deciding which batches ``write`` accepts.

A store buffers what it is given and commits it later, so a value that no commit can store
must be refused when it is written, not when a flush fails (by then the writer has moved on,
and a background flush fails every later call). The rule is the same for every backend, the
memory store included, so a pipeline that runs on one runs on all: a store keeps what a Delta
table written as Parquet keeps and reads back.

- **Types.** Booleans, integers, 32- and 64-bit floats, strings, binary, dates, timestamps,
  128-bit decimals and nulls, in lists, structs (with at least one field) and maps. Delta has
  no time of day, duration, interval, half float or 256-bit decimal, Parquet no empty struct.
- **Depth.** Parquet readers refuse schemas nested more than 100 levels (counting the root and
  the leaf; a struct is one level, a list or map two): a list of lists 49 deep is the deepest
  that reads back, 50 deep is written and then never read.
- **Values.** Delta keeps an unsigned integer column as the signed integer of its width, and
  every timestamp in microseconds: an unsigned value above the signed maximum, a timestamp in
  seconds or milliseconds beyond what 64-bit microseconds hold, and a nanosecond timestamp
  that is not a whole number of microseconds are refused. (Delta truncated the last one
  without a word: two tags a nanosecond apart read back as one; PostgreSQL refused it.)
- **Names.** Delta compares column names ignoring case: two columns whose names differ only in
  case cannot be one table's (``_common.evolve_schema`` checks new columns against stored ones).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from podline.conversion import map_entries
from podline.errors import StoreError
from podline.stores._common import path_text
from podline.stores.base import StorePath

__all__ = ["MAX_NESTING", "check_storable"]

#: Nesting levels below a column (struct: 1, list or map: 2) that Parquet reads back: its
#: readers' schema depth limit of 100 counts the root and the leaf too.
MAX_NESTING = 98
#: Microseconds per unit, for timestamps Delta keeps in microseconds.
_TO_MICROSECONDS = {"s": 1_000_000, "ms": 1_000}
#: Nanoseconds per microsecond: a nanosecond timestamp must be a multiple of it.
_NS_PER_US = 1_000
_INT64_MAX = 2**63 - 1


def check_storable(table: pa.Table, path: StorePath) -> None:
    """Raise a ``StoreError`` naming the table and column if any store would fail to keep
    ``table`` (canonical types) when it is committed (see the module docs)."""
    folded: dict[str, str] = {}
    for f in table.schema:
        other = folded.setdefault(f.name.lower(), f.name)
        if other != f.name:
            raise StoreError(
                f"columns {other!r} and {f.name!r} at {path_text(path)} differ only in case, "
                f"which Delta tables do not tell apart"
            )
        where = f"column {f.name!r} at {path_text(path)}"
        for name, t in _fields(f.name, f.type):
            reason = _unsupported(t)
            if reason is not None:
                field = "" if name == f.name else f" (at {name!r})"
                raise StoreError(f"{where} holds {t}{field}, {reason}")
        levels = _levels(f.type)
        if levels > MAX_NESTING:
            raise StoreError(
                f"{where} is nested {levels} levels deep; Parquet reads back at most "
                f"{MAX_NESTING} (a struct is one level, a list or a map two)"
            )
        for name, values in _checked_values(f.name, table.column(f.name)):
            _check_values(values, f"{where}{'' if name == f.name else f' (at {name!r})'}")


def _fields(name: str, t: pa.DataType) -> Iterator[tuple[str, pa.DataType]]:
    """(name, type) of ``t`` and of every type nested in it, named as podline names nested
    fields (``'a.b'``, ``'l[]'``, ``'m.key'``)."""
    yield name, t
    if pa.types.is_struct(t):
        for i in range(t.num_fields):
            yield from _fields(f"{name}.{t.field(i).name}", t.field(i).type)
    elif pa.types.is_map(t):
        yield from _fields(f"{name}.key", t.key_type)
        yield from _fields(f"{name}.value", t.item_type)
    elif _is_list(t):
        yield from _fields(f"{name}[]", t.value_type)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_large_list(t) or pa.types.is_list(t) or pa.types.is_fixed_size_list(t)


def _unsupported(t: pa.DataType) -> str | None:
    """Why no store keeps type ``t`` (nested types: only the type itself), or None."""
    if pa.types.is_struct(t):
        return None if t.num_fields else "a struct without fields, which Parquet cannot write"
    if _is_list(t) or pa.types.is_map(t):
        return None
    if (
        pa.types.is_null(t)
        or pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_float32(t)
        or pa.types.is_float64(t)
        or pa.types.is_large_string(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_date(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_decimal128(t)
    ):
        return None
    return "which Delta Lake has no type for"


def _levels(t: pa.DataType) -> int:
    """Parquet schema levels below a column of type ``t`` (see ``MAX_NESTING``)."""
    if pa.types.is_struct(t):
        return 1 + max((_levels(t.field(i).type) for i in range(t.num_fields)), default=0)
    if pa.types.is_map(t):
        return 2 + max(_levels(t.key_type), _levels(t.item_type))
    if _is_list(t):
        return 2 + _levels(t.value_type)
    return 0


def _has_checked_values(t: pa.DataType) -> bool:
    if pa.types.is_unsigned_integer(t):
        return True
    if pa.types.is_timestamp(t):
        return t.unit != "us"
    return any(_has_checked_values(t.field(i).type) for i in range(t.num_fields))


def _checked_values(
    name: str, column: pa.ChunkedArray | pa.Array
) -> Iterator[tuple[str, pa.ChunkedArray | pa.Array]]:
    """(name, values) of every unsigned or non-microsecond timestamp leaf of ``column``,
    nested values flattened; nothing is read for columns without such a leaf."""
    t = column.type
    if not _has_checked_values(t):
        return
    if pa.types.is_unsigned_integer(t) or pa.types.is_timestamp(t):
        yield name, column
        return
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    for chunk in chunks:
        if pa.types.is_struct(t):
            for i, child in enumerate(chunk.flatten()):
                yield from _checked_values(f"{name}.{t.field(i).name}", child)
        elif pa.types.is_map(t):
            entries = map_entries(chunk)
            yield from _checked_values(f"{name}.key", entries.field(0))
            yield from _checked_values(f"{name}.value", entries.field(1))
        else:
            yield from _checked_values(f"{name}[]", chunk.flatten())


def _check_values(values: pa.ChunkedArray | pa.Array, where: str) -> None:
    """Refuse unsigned values above the signed maximum of their width, and timestamps that
    64-bit microseconds cannot hold: too large, or finer than a microsecond."""
    if values.null_count == len(values):
        return
    t = values.type
    if pa.types.is_unsigned_integer(t):
        top = 2 ** (t.bit_width - 1) - 1
        largest = pc.max(values).as_py()
        if largest > top:
            raise StoreError(
                f"{where} holds {largest}, above {top}: Delta Lake keeps {t} as a signed "
                f"{t.bit_width}-bit integer, so no store keeps a larger one"
            )
        return
    if t.unit == "ns":
        ticks = values.cast(pa.int64())
        finer = pc.not_equal(pc.multiply(pc.divide(ticks, _NS_PER_US), _NS_PER_US), ticks)
        if pc.any(finer).as_py():
            first = values.filter(finer)[0]
            raise StoreError(
                f"{where} holds {_iso(first)}, a timestamp finer than a microsecond: Delta Lake "
                f"and PostgreSQL keep microseconds, so no store keeps it exactly. Give the "
                f"column microseconds where it is made (pyarrow: pc.cast(column, "
                f"pa.timestamp('us'{_tz_arg(t)}), safe=False); polars: "
                f".dt.cast_time_unit('us'); pandas: .astype('datetime64[us]')), dropping the "
                f"nanoseconds knowingly, or keep them as integers (cast to pa.int64())"
            )
        return
    scale = _TO_MICROSECONDS[t.unit]
    bounds = pc.min_max(values.cast(pa.int64()))
    for value in (bounds["min"].as_py(), bounds["max"].as_py()):
        if abs(value) > _INT64_MAX // scale:
            raise StoreError(
                f"{where} holds a timestamp of {value} {t.unit}, beyond what a store keeps "
                f"(Delta Lake keeps timestamps as 64-bit microseconds)"
            )


def _iso(value: pa.TimestampScalar) -> str:
    """A nanosecond timestamp as ISO 8601 text, every digit kept (``as_py`` needs pandas),
    in its zone with the offset, if it has one."""
    zoned = "%z" if value.type.tz is not None else ""
    text: str = pc.strftime(value, format=f"%Y-%m-%dT%H:%M:%S{zoned}").as_py()
    return text


def _tz_arg(t: pa.TimestampType) -> str:
    return "" if t.tz is None else f", tz={t.tz!r}"
