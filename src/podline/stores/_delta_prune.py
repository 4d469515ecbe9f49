"""Lookups that read only what can hold their rows: an equality filter (``scan(where=)``) or
a read of a few ids on a plain local Delta table.

Two steps skip data, and neither changes what a lookup returns (the rows, their order,
their types):

- **Files** whose log statistics (``_delta_stats``) exclude every value looked for are not
  read. The bounds are trusted only as far as every writer keeps them: integers, booleans,
  dates and UTC timestamps (within a millisecond either way: delta-rs cuts a maximum down to
  one), and strings (a maximum may be a cut and raised prefix, or a cut one with a character
  appended, so a value sharing all but its last character is kept). Floats, decimals and
  other types never skip a file; a missing or unreadable statistic keeps it. A null test
  skips files with no null in the column, a value test files whose column is all null.
- **Inside a file**, the columns tested are read first; the other columns are read only for
  the row groups holding a match, and only the matching rows are kept.

Keys are random in most podline tables (hashes, permuted tags), so bounds rarely skip a
file there; the second step is what makes a lookup cheap: it reads one or two narrow
columns, not every requested one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from podline.stores._common import canonical_type, conform
from podline.stores._delta_format import parquet_file
from podline.stores.base import StorePath

__all__ = ["Lookup", "Select", "id_select", "may_hold", "read_matching"]

#: Values looked for, by column (None: a null).
Lookup = Mapping[str, Sequence[Any]]
#: Which rows of a table of the tested columns match (one boolean per row).
Select = Callable[[pa.Table], Any]

_UTC = pa.timestamp("us", tz="UTC")
_TOLERANCE = dt.timedelta(milliseconds=1)
#: Files of at most this many rows are read whole by a lookup (see ``_small_matching``).
_WHOLE_ROWS = 1024


def may_hold(stats: str | None, lookup: Lookup, schema: pa.Schema) -> bool:
    """Whether a file with these log ``stats`` may hold a row matching ``lookup`` (each
    column equal to one of its values; columns typed by ``schema``)."""
    if not stats:
        return True
    try:
        parsed = json.loads(stats)
    except ValueError:
        return True
    if not isinstance(parsed, dict):
        return True
    return all(
        any(_value_may_be(parsed, name, value, schema.field(name).type) for value in values)
        for name, values in lookup.items()
    )


def _value_may_be(stats: dict[str, Any], name: str, value: Any, t: pa.DataType) -> bool:
    nulls = _get(stats, "nullCount", name)
    rows = stats.get("numRecords")
    if value is None:
        return not (type(nulls) is int and nulls == 0)
    if type(nulls) is int and type(rows) is int and nulls >= rows:
        return False  # every value of the column is null
    low, high = _get(stats, "minValues", name), _get(stats, "maxValues", name)
    if low is None or high is None:
        return True
    try:
        return _within(value, low, high, t)
    except (TypeError, ValueError, OverflowError):  # a bound of another form: unknown
        return True


def _get(stats: dict[str, Any], kind: str, name: str) -> Any:
    values = stats.get(kind)
    return values.get(name) if isinstance(values, dict) else None


def _within(value: Any, low: Any, high: Any, t: pa.DataType) -> bool:
    """Whether ``value`` may lie within the bounds (see the module docs)."""
    if pa.types.is_integer(t):
        if type(low) is not int or type(high) is not int:
            return True
        return bool(low <= value <= high)
    if pa.types.is_boolean(t):
        if type(low) is not bool or type(high) is not bool:
            return True
        return bool(low <= value <= high)
    if pa.types.is_large_string(t):
        if type(low) is not str or type(high) is not str:
            return True
        return bool(low <= value and (value <= high or value.startswith(high[:-1])))
    if pa.types.is_date32(t):
        return dt.date.fromisoformat(low) <= value <= dt.date.fromisoformat(high)
    if t == _UTC:
        first, last = dt.datetime.fromisoformat(low), dt.datetime.fromisoformat(high)
        if first.tzinfo is None or last.tzinfo is None:
            return True
        return bool(first - _TOLERANCE <= value <= last + _TOLERANCE)
    return True


def read_matching(
    files: Mapping[str, int],
    columns: Sequence[str],
    keys: pa.Schema,
    select: Select,
    *,
    filesystem: pafs.FileSystem,
    path: StorePath,
    table: str,
) -> Iterator[pa.Table]:
    """The rows of each Parquet file of ``files`` (path -> size, in order; the caller checks
    them with ``check_data_files``) that ``select`` picks, with those of ``columns`` the file has.
    ``select`` sees the tested columns (``keys``, in their written types; nulls where a file
    lacks one); the other columns are read only for row groups holding a pick."""
    for name in files:
        with parquet_file(filesystem, name, table) as file:
            part = _matching(file, columns, keys, select, path)
        if part is not None:
            yield part


def _matching(
    file: pq.ParquetFile, columns: Sequence[str], keys: pa.Schema, select: Select, path: StorePath
) -> pa.Table | None:
    has = set(file.schema_arrow.names)
    rest = [c for c in columns if c in has and c not in keys.names]
    if rest and file.metadata.num_rows <= _WHOLE_ROWS:
        return _small_matching(file, columns, keys, select, path)
    tested = conform(file.read(columns=[k for k in keys.names if k in has]), keys, path)
    picked = np.asarray(select(tested), dtype=bool)
    if not picked.any():
        return None
    ends = np.cumsum([file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)])
    starts = ends - [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
    groups = [i for i in range(file.num_row_groups) if picked[starts[i] : ends[i]].any()]
    keep = np.concatenate([picked[starts[i] : ends[i]] for i in groups])
    tested = pa.concat_tables([tested.slice(starts[i], ends[i] - starts[i]) for i in groups])
    other = file.read_row_groups(groups, columns=rest) if rest else None
    names = [c for c in columns if c in has or c in keys.names]
    merged = pa.table(
        {c: tested[c] if c in keys.names else other[c] for c in names}  # type: ignore[index]
    )
    return _filtered(merged, keep)


def _small_matching(
    file: pq.ParquetFile, columns: Sequence[str], keys: pa.Schema, select: Select, path: StorePath
) -> pa.Table | None:
    """``_matching`` of a small file: its columns read at once, which costs less than a
    second read of the row groups holding a pick (a spec, a marker: a few rows)."""
    has = set(file.schema_arrow.names)
    tested_names = [k for k in keys.names if k in has]
    whole = file.read(
        columns=list(dict.fromkeys([*tested_names, *(c for c in columns if c in has)]))
    )
    tested = conform(whole.select(tested_names), keys, path)
    picked = np.asarray(select(tested), dtype=bool)
    if not picked.any():
        return None
    names = [c for c in columns if c in has or c in keys.names]
    merged = pa.table({c: tested[c] if c in keys.names else whole[c] for c in names})
    return _filtered(merged, picked)


def _filtered(table: pa.Table, keep: np.ndarray) -> pa.Table:
    """The rows of ``table`` that ``keep`` picks. Arrow has no kernel taking rows of string
    or binary views, which delta-rs writes when it rewrites a file (a deletion, a compaction):
    such columns are converted to their canonical types first, as ``conform`` would convert
    them after."""
    if keep.all():
        return table
    for i, f in enumerate(table.schema):
        if _has_view(f.type):
            canonical = canonical_type(f.type)
            table = table.set_column(i, f.with_type(canonical), table.column(i).cast(canonical))
    return table.filter(pa.array(keep))


def _has_view(t: pa.DataType) -> bool:
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        return True
    if pa.types.is_dictionary(t):
        return _has_view(t.value_type)
    return any(_has_view(t.field(i).type) for i in range(t.num_fields))


def id_select(column: str, ids: pa.Array) -> Select:
    """Picks the rows whose ``column`` holds one of ``ids``."""
    wanted = ids.cast(pa.large_string())

    def select(table: pa.Table) -> Any:
        return pc.is_in(table[column].cast(pa.large_string()), value_set=wanted).fill_null(False)

    return select
