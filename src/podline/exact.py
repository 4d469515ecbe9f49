"""Which Python values a declared podline type holds exactly.

A value enters a typed column only if reading it back gives the same value: Arrow's own
conversion truncates floats into integer columns, folds ``datetime`` into ``date``, drops a
datetime's zone and a pandas timestamp's nanoseconds, and encodes ``str`` into ``bytes``, all
without a word. ``misfit`` says why a value does not fit its type (or ``None`` when it does);
``first_misfit`` finds the first such value of a column, checking whole columns of plain
values by their Python types in one pass before it looks at any value on its own.

The rules (docs/types.md shows them as a table):

* ``int`` holds ints and numpy integers, never ``bool`` and never a float, not even ``2.0``:
  a float there is a type error in the function, and accepting only the integral ones would
  make it fail on some rows and not others.
* ``float`` holds floats (numpy floats up to 64 bits) and ints whose magnitude is at most
  2**53, which float64 represents exactly; never ``bool``.
* ``bool`` holds ``bool`` and ``numpy.bool_`` only; ``str`` only ``str``; ``bytes`` only
  ``bytes`` and ``bytearray``.
* ``datetime`` is a timestamp without zone at microsecond precision: it holds naive datetimes
  whose sub-microsecond part (pandas' ``nanosecond``) is zero, never an aware one (its zone
  would be lost) and never a bare ``date``; ``date`` holds dates, never a datetime.
* ``Path`` holds ``pathlib.Path`` values, never strings.
* ``list[T]`` and homogeneous tuples hold lists, tuples and one-dimensional numpy arrays whose
  items fit ``T`` (the container kind follows the declared type on the way back); a
  heterogeneous ``tuple[A, B]`` holds sequences of its length; ``dict[K, V]`` holds mappings
  whose keys fit ``K`` and values fit ``V``; a record holds a mapping with no keys beyond its
  fields, or an instance of its dataclass.
* ``None`` is checked elsewhere (``T`` versus ``T | None``), so it always passes here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from podline.schema import (
    PodType,
    args_of,
    is_record_type,
    normalize_type,
    origin_of,
    record_fields,
    strip_optional,
)

__all__ = ["first_misfit", "misfit"]

_NONE = type(None)
#: Integers float64 represents exactly, whatever their neighbours.
_FLOAT_EXACT = 2**53
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_INTS = (int, np.integer)
_BOOLS = (bool, np.bool_)
_FLOATS = (float, np.float32, np.float16)  # np.float64 is a float

# Types whose values all fit, checked column-wide with one ``set(map(type, values))``.
_PLAIN_KINDS: dict[Any, frozenset[type]] = {
    int: frozenset({int, np.int64, np.int32, np.int16, np.int8, np.uint32, np.uint16, np.uint8}),
    float: frozenset({float, np.float64, np.float32, np.float16}),
    bool: frozenset({bool, np.bool_}),
    str: frozenset({str}),
    bytes: frozenset({bytes}),
    dt.date: frozenset({dt.date}),
    dt.datetime: frozenset(),  # naive or aware is a property of the value, not of its type
    _NONE: frozenset(),
}
_SEQUENCES = frozenset({list, tuple})


def misfit(value: Any, tp: PodType) -> str | None:
    """Why ``value`` cannot be stored exactly as type ``tp``, or ``None`` if it can."""
    return _checker(normalize_type(tp))(value)


def first_misfit(
    values: Sequence[Any], tp: PodType, *, by_value: bool = False
) -> tuple[int, str] | None:
    """The position of the first value of ``values`` that ``tp`` cannot hold exactly, and why;
    ``None`` when every value fits.

    Columns of plain values are checked by their Python types alone, which leaves the range of
    ints to Arrow (it refuses what int64 cannot hold); ``by_value`` looks at every value, to
    name the one Arrow refused.
    """
    tp = normalize_type(tp)
    if not by_value and _all_plain(values, tp):
        return None
    check = _checker(tp)
    for index, value in enumerate(values):
        problem = check(value)
        if problem is not None:
            return index, problem
    return None


# --------------------------------------------------------------------------- fast path


def _all_plain(values: Iterable[Any], tp: PodType) -> bool:
    """True when every value is of a kind that ``tp`` always holds exactly (checked by Python
    type, column-wide); False means "look closer", not "misfit"."""
    base = strip_optional(tp)
    kinds = _PLAIN_KINDS.get(base)
    if kinds is not None:
        return set(map(type, values)) <= kinds | {_NONE}
    origin, args = origin_of(base), args_of(base)
    if origin is list or (origin is tuple and len(set(args)) == 1):
        present = [v for v in values if v is not None]
        if not set(map(type, present)) <= _SEQUENCES:
            return False
        if origin is tuple and {len(v) for v in present} - {len(args)}:
            return False
        return _all_plain(itertools.chain.from_iterable(present), args[0])
    if origin is dict:
        present = [v for v in values if v is not None]
        if not set(map(type, present)) <= {dict}:
            return False
        keys = itertools.chain.from_iterable(present)
        items = itertools.chain.from_iterable(v.values() for v in present)
        return _all_plain(keys, args[0]) and _all_plain(items, args[1])
    return False


# --------------------------------------------------------------------------- per value

Checker = Callable[[Any], "str | None"]


@functools.cache
def _checker(tp: PodType) -> Checker:
    base = strip_optional(tp)
    check = _base_checker(base)
    return lambda v: None if v is None else check(v)


def _kind(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _base_checker(tp: PodType) -> Checker:
    scalar = _SCALAR_CHECKS.get(tp)
    if scalar is not None:
        return scalar
    if isinstance(tp, type) and issubclass(tp, Path):
        return lambda v: None if isinstance(v, Path) else f"{_kind(v)} is not a pathlib.Path"
    if is_record_type(tp):
        return _record_checker(tp)
    origin, args = origin_of(tp), args_of(tp)
    if origin is list or (origin is tuple and len(set(args)) == 1):
        return _sequence_checker(args[0], len(args) if origin is tuple else None)
    if origin is tuple:
        return _tuple_checker(args)
    if origin is dict:
        return _dict_checker(args[0], args[1])
    return lambda v: None  # no other type reaches here: the schema mapping rejects them


def _check_int(v: Any) -> str | None:
    if isinstance(v, _BOOLS):
        return f"{_kind(v)} is a bool, not an int"
    if isinstance(v, _INTS):
        return None if _INT64_MIN <= int(v) <= _INT64_MAX else f"{_kind(v)} is beyond int64"
    if isinstance(v, (float, np.floating)):
        return f"{_kind(v)} is a float, not an int (convert it with int() or round())"
    return f"{_kind(v)} is not an int"


def _check_float(v: Any) -> str | None:
    if isinstance(v, _BOOLS):
        return f"{_kind(v)} is a bool, not a float"
    if isinstance(v, _FLOATS):
        return None
    if isinstance(v, _INTS):
        if -_FLOAT_EXACT <= int(v) <= _FLOAT_EXACT:
            return None
        return f"{_kind(v)} is beyond 2**53, so a float64 cannot hold it exactly"
    return f"{_kind(v)} is not a float"


def _check_datetime(v: Any) -> str | None:
    if not isinstance(v, dt.datetime):
        return f"{_kind(v)} is not a datetime"
    if v.tzinfo is not None:
        return (
            f"{_kind(v)} has a time zone, and a datetime column holds naive timestamps; "
            "convert it, e.g. with .astimezone(timezone.utc).replace(tzinfo=None)"
        )
    extra: Any = v  # pandas.Timestamp, a datetime subclass that counts nanoseconds
    if type(v) is not dt.datetime and hasattr(extra, "nanosecond") and extra.nanosecond:
        # pandas.Timestamp: Arrow would drop the nanoseconds a microsecond column cannot hold.
        return f"{_kind(v)} has nanoseconds, and a datetime column holds microseconds"
    return None


def _check_date(v: Any) -> str | None:
    if isinstance(v, dt.datetime):
        return f"{_kind(v)} is a datetime, and a date column would drop its time"
    return None if isinstance(v, dt.date) else f"{_kind(v)} is not a date"


def _instance_check(kinds: tuple[type, ...], name: str) -> Checker:
    return lambda v: None if isinstance(v, kinds) else f"{_kind(v)} is not {name}"


_SCALAR_CHECKS: dict[Any, Checker] = {
    int: _check_int,
    float: _check_float,
    bool: _instance_check(_BOOLS, "a bool"),
    str: _instance_check((str,), "a str"),
    bytes: _instance_check((bytes, bytearray), "bytes"),
    dt.datetime: _check_datetime,
    dt.date: _check_date,
    _NONE: lambda v: f"{_kind(v)} is not None",
}


def _items(value: Any) -> list[Any] | None:
    """The items of a list-like value (a 1-d numpy array as Python values), else None."""
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return list(value.tolist())
    return None


def _sequence_checker(item: PodType, length: int | None) -> Checker:
    def check(v: Any) -> str | None:
        items = _items(v)
        if items is None:
            return f"{_kind(v)} is not a list, tuple or 1-d array"
        if length is not None and len(items) != length:
            return f"{_kind(v)} has {len(items)} items where the type has {length}"
        found = first_misfit(items, item)
        return None if found is None else f"item {found[0]}: {found[1]}"

    return check


def _tuple_checker(items: tuple[PodType, ...]) -> Checker:
    def check(v: Any) -> str | None:
        values = _items(v)
        if values is None or len(values) != len(items):
            return f"{_kind(v)} is not a sequence of {len(items)} items"
        for index, (value, tp) in enumerate(zip(values, items, strict=True)):
            problem = misfit(value, tp)
            if problem is not None:
                return f"item {index}: {problem}"
        return None

    return check


def _dict_checker(key: PodType, value: PodType) -> Checker:
    def check(v: Any) -> str | None:
        if not isinstance(v, Mapping):
            return f"{_kind(v)} is not a mapping"
        for k, x in v.items():
            problem = misfit(k, key)
            if problem is not None:
                return f"key {k!r}: {problem}"
            problem = misfit(x, value)
            if problem is not None:
                return f"value at key {k!r}: {problem}"
        return None

    return check


def _record_checker(tp: PodType) -> Checker:
    fields = record_fields(tp)

    def check(v: Any) -> str | None:
        if dataclasses.is_dataclass(tp) and isinstance(v, cast(type, tp)):
            data = {name: getattr(v, name) for name in fields}
        elif isinstance(v, Mapping):
            extra = sorted(map(str, set(v) - set(fields)))
            if extra:
                return f"{_kind(v)} has key(s) {', '.join(map(repr, extra))} beyond the record"
            data = dict(v)
        else:
            return f"{_kind(v)} is not a record (a mapping or {tp.__name__})"
        for name, sub in fields.items():
            problem = misfit(data.get(name), sub)
            if problem is not None:
                return f"field {name!r}: {problem}"
        return None

    return check
