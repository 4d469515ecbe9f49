"""Property tests of row hashes over random tables (see the "ci"/"dev" profiles in conftest)."""

from __future__ import annotations

import datetime as dt
import math
import struct
from dataclasses import dataclass
from typing import Any, TypedDict

import pyarrow as pa
from hypothesis import example, given
from hypothesis import strategies as st

from podline.conversion import column_to_python, table_from_columns
from podline.hashing import hash_table, row_hash_strings

INT64 = st.integers(min_value=-(2**62), max_value=2**62)
SMALL_INT = st.integers(min_value=-(2**31), max_value=2**31 - 1)


@dataclass(frozen=True)
class Kind:
    """A column kind: how to draw values, its canonical Arrow type, and how to alter a value."""

    name: str
    values: st.SearchStrategy[Any]
    arrow: pa.DataType


KINDS = [
    Kind("int", st.one_of(SMALL_INT, INT64), pa.int64()),
    Kind("float", st.floats(allow_nan=True, allow_infinity=True), pa.float64()),
    Kind("text", st.text(max_size=8), pa.large_string()),
    Kind("binary", st.binary(max_size=8), pa.large_binary()),
    Kind("opt_int", st.none() | SMALL_INT, pa.int64()),
    Kind("opt_text", st.none() | st.text(max_size=5), pa.large_string()),
    Kind("int_list", st.lists(SMALL_INT, max_size=4), pa.large_list(pa.int64())),
    Kind(
        "opt_int_list",
        st.none() | st.lists(st.none() | SMALL_INT, max_size=3),
        pa.large_list(pa.int64()),
    ),
]


def different(kind: Kind, value: Any) -> Any:
    """A value of the same kind that is canonically different from ``value``."""
    if kind.name == "int":
        return value + 1 if value < 2**62 else value - 1
    if kind.name == "float":
        if math.isnan(value):
            return 0.0
        return 2.5 if value == 1.5 else 1.5
    if kind.name == "text":
        return value + "x"
    if kind.name == "binary":
        return value + b"\x00"
    if kind.name in ("opt_int", "opt_text"):
        if value is None:
            return 0 if kind.name == "opt_int" else ""
        return None
    if kind.name == "int_list":
        return [*value, 0]
    if kind.name == "opt_int_list":
        return [None] if value is None else None
    raise AssertionError(kind.name)  # pragma: no cover


@dataclass
class RandomTable:
    table: pa.Table
    kinds: dict[str, Kind]
    columns: dict[str, list[Any]]


@st.composite
def random_tables(draw: st.DrawFn) -> RandomTable:
    n_rows = draw(st.integers(min_value=1, max_value=8))
    names = draw(
        st.lists(
            st.text(alphabet="abcxyz_", min_size=1, max_size=4).filter(
                lambda s: not s.startswith("__")
            ),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    kinds: dict[str, Kind] = {}
    columns: dict[str, list[Any]] = {}
    for name in names:
        kind = draw(st.sampled_from(KINDS))
        kinds[name] = kind
        columns[name] = draw(st.lists(kind.values, min_size=n_rows, max_size=n_rows))
    table = pa.table({name: pa.array(columns[name], kinds[name].arrow) for name in names})
    return RandomTable(table, kinds, columns)


def hashes(table: pa.Table) -> list[str]:
    return row_hash_strings(table).to_pylist()


def physical_variant(array: pa.Array, split: int) -> pa.ChunkedArray:
    """The same logical column in another physical form, split into two chunks at ``split``."""
    t = array.type
    if pa.types.is_large_string(t):
        array = array.cast(pa.string())
    elif pa.types.is_large_binary(t):
        array = array.cast(pa.binary())
    elif pa.types.is_int64(t):
        values = [v for v in array.to_pylist() if v is not None]
        if all(-(2**31) <= v < 2**31 for v in values):
            array = array.cast(pa.int32())
    elif pa.types.is_float64(t):
        array = array.dictionary_encode() if split % 2 else array
    elif pa.types.is_large_list(t):
        array = array.cast(pa.list_(pa.int32()))
    split = min(split, len(array))
    return pa.chunked_array([array.slice(0, split), array.slice(split)], type=array.type)


@given(random_tables(), st.randoms(use_true_random=False))
def test_invariant_under_column_permutation(data: RandomTable, rnd: Any) -> None:
    names = list(data.table.column_names)
    rnd.shuffle(names)
    permuted = data.table.select(names)
    assert hashes(permuted) == hashes(data.table)
    assert hash_table(permuted) == hash_table(data.table)


@given(random_tables(), st.integers(min_value=0, max_value=8))
def test_invariant_under_physical_variants(data: RandomTable, split: int) -> None:
    variant = pa.table(
        {
            name: physical_variant(data.table.column(name).combine_chunks(), split + i)
            for i, name in enumerate(data.table.column_names)
        }
    )
    assert variant.schema != data.table.schema or variant.column(0).num_chunks > 1
    assert hashes(variant) == hashes(data.table)
    assert hash_table(variant) == hash_table(data.table)


@given(random_tables(), st.data())
def test_changing_one_value_changes_that_row_only(data: RandomTable, draw: st.DataObject) -> None:
    name = draw.draw(st.sampled_from(sorted(data.columns)))
    row = draw.draw(st.integers(min_value=0, max_value=data.table.num_rows - 1))
    values = list(data.columns[name])
    values[row] = different(data.kinds[name], values[row])
    index = data.table.column_names.index(name)
    changed = data.table.set_column(index, name, pa.array(values, data.kinds[name].arrow))

    before, after = hashes(data.table), hashes(changed)
    assert before[row] != after[row]
    for i in range(len(before)):
        if i != row:
            assert before[i] == after[i]
    assert hash_table(changed) != hash_table(data.table)


def other_type(kind: Kind, values: list[Any]) -> pa.Array:
    """The column's values under a different logical type."""
    if kind.name in ("int", "opt_int"):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if kind.name == "float":
        return pa.array([repr(v) for v in values], pa.large_string())
    if kind.name in ("text", "opt_text"):
        return pa.array([None if v is None else v.encode() for v in values], pa.large_binary())
    if kind.name == "binary":
        return pa.array([v.decode("latin-1") for v in values], pa.large_string())
    if kind.name in ("int_list", "opt_int_list"):
        floats = [
            None if v is None else [None if x is None else float(x) for x in v] for v in values
        ]
        return pa.array(floats, pa.large_list(pa.float64()))
    raise AssertionError(kind.name)  # pragma: no cover


@given(random_tables(), st.data())
def test_changing_a_column_type_changes_every_row(data: RandomTable, draw: st.DataObject) -> None:
    name = draw.draw(st.sampled_from(sorted(data.columns)))
    index = data.table.column_names.index(name)
    retyped = data.table.set_column(index, name, other_type(data.kinds[name], data.columns[name]))
    before, after = hashes(data.table), hashes(retyped)
    assert all(a != b for a, b in zip(before, after, strict=True))


@given(random_tables(), st.data())
def test_renaming_a_column_changes_every_row(data: RandomTable, draw: st.DataObject) -> None:
    name = draw.draw(st.sampled_from(sorted(data.columns)))
    renamed = data.table.rename_columns(
        [n + "_renamed" if n == name else n for n in data.table.column_names]
    )
    before, after = hashes(data.table), hashes(renamed)
    assert all(a != b for a, b in zip(before, after, strict=True))


@given(random_tables())
def test_equal_rows_hash_equal(data: RandomTable) -> None:
    doubled = pa.concat_tables([data.table, data.table])
    got = hashes(doubled)
    n = data.table.num_rows
    assert got[:n] == got[n:] == hashes(data.table)


# --------------------------------------------------------------------------- memo keys


class _Record(TypedDict):
    a: int | None
    b: list[str]


# Values drawn from small sets half the time, so that pairs often hold equal or nearly equal
# values (0.0 and -0.0, "é" composed and decomposed, the int64 limits).
_FULL_INT = st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63)]) | st.integers(
    min_value=-(2**63), max_value=2**63 - 1
)
_FLOAT = st.sampled_from([0.0, -0.0, math.nan, 1.0, math.inf, -math.inf, 5e-324]) | st.floats()
_TEXT = st.text(alphabet="e\u0301\u00e9\x00", max_size=3) | st.text(max_size=6)
_RECORD = st.fixed_dictionaries({"a": st.none() | _FULL_INT, "b": st.lists(_TEXT, max_size=3)})

#: Every kind of value a function receives, as (declared type, values).
_TYPED: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (int, _FULL_INT),
    (float, _FLOAT),
    (bool, st.booleans()),
    (str, _TEXT),
    (bytes, st.binary(max_size=6)),
    (dt.datetime, st.datetimes(min_value=dt.datetime(1, 1, 1))),
    (dt.date, st.dates()),
    (list[int | None], st.lists(st.none() | _FULL_INT, max_size=4)),
    (list[float], st.lists(_FLOAT, max_size=3)),
    (list[list[int]], st.lists(st.lists(_FULL_INT, max_size=2), max_size=3)),
    (dict[str, float], st.dictionaries(_TEXT, _FLOAT, max_size=3)),
    (dict[int, list[str]], st.dictionaries(_FULL_INT, st.lists(_TEXT, max_size=2), max_size=3)),
    (tuple[int, str], st.tuples(_FULL_INT, _TEXT)),
    (tuple[float, float], st.tuples(_FLOAT, _FLOAT)),
    (_Record, _RECORD),
    (list[_Record], st.lists(_RECORD, max_size=2)),
    (str | None, st.none() | _TEXT),
]


def _same(a: Any, b: Any) -> bool:
    """Whether a function can tell ``a`` from ``b`` only by a NaN's payload: same types at
    every depth, dicts in the same order, ``-0.0`` apart from ``0.0``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@st.composite
def _typed_pairs(draw: st.DrawFn) -> tuple[Any, Any, Any]:
    tp, values = draw(st.sampled_from(_TYPED))
    first = draw(values)
    return tp, first, draw(st.one_of(st.just(first), values))


@given(_typed_pairs())
# Pairs of values that are equal, or look alike, to Python or to Arrow: each must be two keys.
@example((float, 0.0, -0.0))
@example((tuple[float, float], (0.0, -0.0), (-0.0, 0.0)))
@example((list[float], [math.nan], [0.0]))
@example((int, 2**63 - 1, 2**63 - 2))
@example((str, "\u00e9", "e\u0301"))  # NFC and NFD
@example((str | None, "", None))
@example((list[int | None], [], [None]))
@example((dict[str, float], {"a": 1.0, "b": 2.0}, {"b": 2.0, "a": 1.0}))
@example((_Record, {"a": None, "b": []}, {"a": 0, "b": []}))
@example((dt.datetime, dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, 0, 0, 0, 1)))
@example((list[_Record], [], [{"a": None, "b": []}]))
def test_values_a_function_can_tell_apart_are_two_memo_keys(case: tuple[Any, Any, Any]) -> None:
    """The memo key of a call is its argument row's hash: two arguments with one hash must
    reach the function as the same value (types, dict order, the sign of zero), and each
    reaches it as the value it is."""
    tp, first, second = case
    table = table_from_columns({"x": [first, second]}, {"x": tp})
    keys = row_hash_strings(table).to_pylist()
    received = column_to_python(table.column("x"), tp)
    alone = [
        column_to_python(table_from_columns({"x": [v]}, {"x": tp})["x"], tp)[0] for v in case[1:]
    ]
    assert all(_same(a, b) for a, b in zip(received, alone, strict=True))
    if keys[0] == keys[1]:
        assert _same(received[0], received[1]), (tp, first, second)
