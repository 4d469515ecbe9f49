"""The Delta file statistics podline writes with each data file it commits.

Readers skip files by these statistics (a file whose bounds exclude a predicate's value is not
read), so every bound must hold for every row of its file. They are written as delta-rs writes
them, with two departures where delta-rs's own would make its readers skip a file wrongly:

- **Bounded size.** Each commit's log entry carries the statistics, so string bounds are cut to
  a short prefix exactly as delta-rs cuts them (its Parquet writer's statistics: at most 64
  bytes of UTF-8). A minimum is cut to its prefix, still a lower bound; a maximum's prefix is
  raised to an upper bound by incrementing its last character that can be incremented without
  changing its encoded width.
- **All bounds or none.** delta-rs's Arrow dataset reads a missing bound of a column as a null
  one and then skips the file for any predicate on that column. So a file whose columns cannot
  all be bounded exactly (a maximum no prefix of which can be raised, which delta-rs writes
  whole; a float column holding NaN or an infinity, which delta-rs bounds wrongly or as null; a
  decimal; a value Python's dates cannot hold) gets no bounds at all: only its row and null
  counts, with which every reader reads it. Columns delta-rs's readers do not bound (binary,
  lists, maps) get none; a struct gets an empty bound (no field bounded), which they read as
  unknown rather than as null.

Timestamps are bounded to the millisecond, as delta-rs writes them, but the maximum rounded up,
not down: delta-rs cuts it down, and then its own readers miss the greatest value.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["STRING_BOUND_BYTES", "file_stats", "lower_bound", "merged_stats", "upper_bound"]

#: The longest string bound, in UTF-8 bytes (parquet-rs's ``statistics_truncate_length``).
STRING_BOUND_BYTES = 64
_SURROGATES = range(0xD800, 0xE000)


def file_stats(rows: pa.Table) -> dict[str, Any]:
    """Delta file statistics of ``rows`` (see the module docs)."""
    nulls: dict[str, int] = {}
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    complete = True
    for f in rows.schema:
        if pa.types.is_struct(f.type):
            low[f.name] = high[f.name] = {}
            continue
        if pa.types.is_nested(f.type):
            continue
        column = rows.column(f.name)
        nulls[f.name] = column.null_count
        if column.null_count == len(column) or _unbounded(f.type):
            continue
        bounds = _bounds(column)
        if bounds is None:
            complete = False
        else:
            low[f.name], high[f.name] = bounds
    stats: dict[str, Any] = {"numRecords": rows.num_rows}
    if complete:
        stats.update(minValues=low, maxValues=high)
    stats["nullCount"] = nulls
    return stats


def _unbounded(t: pa.DataType) -> bool:
    """Whether readers never skip files by bounds of a column of type ``t``."""
    return pa.types.is_large_binary(t) or pa.types.is_null(t)


def _bounds(column: pa.ChunkedArray) -> tuple[Any, Any] | None:
    """Exact (lower, upper) bounds of the non-null values of ``column`` as the log writes
    them, or None where it cannot (see the module docs)."""
    t = column.type
    if len(column) == 1:  # one value, not null (see file_stats): no kernel calls
        least = greatest = column[0]
        nan = pa.types.is_floating(t) and math.isnan(least.as_py())
    else:
        nan = pa.types.is_floating(t) and pc.any(pc.is_nan(column)).as_py()
        bounds = pc.min_max(column)
        least, greatest = bounds["min"], bounds["max"]
    if nan:
        return None
    try:
        low, high = least.as_py(), greatest.as_py()
    except (OverflowError, ValueError):  # a date or time Python cannot hold
        return None
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return low, high
    if pa.types.is_floating(t):
        return (low, high) if math.isfinite(low) and math.isfinite(high) else None
    if pa.types.is_large_string(t):
        top = upper_bound(high)
        return None if top is None else (lower_bound(low), top)
    if pa.types.is_date32(t):
        return low.isoformat(), high.isoformat()
    if pa.types.is_timestamp(t) and t.tz == "UTC":
        try:
            return _millisecond(low), _millisecond(_ceil_millisecond(high))
        except OverflowError:
            return None
    return None


def _ceil_millisecond(value: dt.datetime) -> dt.datetime:
    """``value`` raised to a whole millisecond: delta-rs cuts a maximum down to one, and its
    own readers then skip a file whose greatest value lies within that millisecond."""
    extra = value.microsecond % 1000
    return value if not extra else value + dt.timedelta(microseconds=1000 - extra)


def _millisecond(value: dt.datetime) -> str:
    """A UTC timestamp cut to the millisecond, as delta-rs writes timestamp bounds."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _prefix(text: str) -> str | None:
    """The longest prefix of ``text`` of at most ``STRING_BOUND_BYTES`` bytes, ending on a
    character boundary; None when ``text`` is no longer than that."""
    encoded = text.encode()
    if len(encoded) <= STRING_BOUND_BYTES:
        return None
    return encoded[:STRING_BOUND_BYTES].decode(errors="ignore")  # drops a cut character


def lower_bound(text: str) -> str:
    """A bound no greater than ``text`` and at most ``STRING_BOUND_BYTES`` long."""
    prefix = _prefix(text)
    return text if prefix is None else prefix


def upper_bound(text: str) -> str | None:
    """A bound no less than ``text`` and at most ``STRING_BOUND_BYTES`` long, or None if no
    prefix of it can be raised to one (see the module docs)."""
    prefix = _prefix(text)
    if prefix is None:
        return text
    for i in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[i]) + 1
        if code > 0x10FFFF or code in _SURROGATES:
            continue
        raised = chr(code)
        if len(raised.encode()) == len(prefix[i].encode()):
            return prefix[:i] + raised
    return None


def merged_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics of a file holding the rows of files whose statistics (``file_stats``)
    are ``parts``: counts added, the least lower and the greatest upper bound of each column
    kept, and no bounds at all where a part has none (see the module docs). Each bound still
    holds for every row, and is as tight as ``file_stats`` of the rows would give it, but
    for a string maximum cut to 64 bytes, which may be a little higher."""
    nulls: dict[str, int] = {}
    for part in parts:
        for name, count in part["nullCount"].items():
            nulls[name] = nulls.get(name, 0) + count
    stats: dict[str, Any] = {"numRecords": sum(part["numRecords"] for part in parts)}
    if all("minValues" in part for part in parts):
        low: dict[str, Any] = {}
        high: dict[str, Any] = {}
        for part in parts:
            for name, value in part["minValues"].items():
                # A struct's bound is empty, never compared; a column wholly null in a part
                # has no bound in it.
                low[name] = value if name not in low or value == {} else min(low[name], value)
            for name, value in part["maxValues"].items():
                high[name] = value if name not in high or value == {} else max(high[name], value)
        stats.update(minValues=low, maxValues=high)
    stats["nullCount"] = nulls
    return stats
