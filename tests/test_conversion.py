"""Tests of podline.conversion: type inference and Python <-> Arrow value conversion."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from pathlib import Path
from typing import Any, TypedDict

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from podline.conversion import (
    column_to_python,
    infer_schema,
    infer_type,
    regrouped,
    table_from_columns,
    table_from_rows,
    to_arrow_value,
    to_python_value,
)
from podline.errors import ConfigurationError, InputValidationError, UnsupportedTypeError
from podline.schema import FILE_PATH_FIELD, Schema, arrow_type


@dataclasses.dataclass
class Measurement:
    label: str
    value: float
    file: Path | None


@dataclasses.dataclass
class Outer:
    inner: Measurement
    counts: list[int]


class Span(TypedDict):
    start: int
    stop: int | None


# --------------------------------------------------------------------------- inference


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2, 3], int),
        ([1.5, 2.0], float),
        ([1, 2.5], float),
        ([2.5, 1], float),
        ([True, False], bool),
        (["a", "b"], str),
        ([b"a"], bytes),
        ([dt.datetime(2020, 1, 1)], dt.datetime),
        ([dt.date(2020, 1, 1)], dt.date),
        ([Path("a"), Path("b")], Path),
        ([1, None], int | None),
        ([None, "x"], str | None),
        ([None, None], type(None)),
        ([], type(None)),
        ([[1, 2], [3]], list[int]),
        ([[1], [2.5]], list[float]),
        ([[1, None]], list[int | None]),
        ([[1], None], list[int] | None),
        ([(1, "a"), (2, "b")], tuple[int, str]),
        ([(1, 2), (3, 4)], tuple[int, int]),
        ([(1, 2), (3,)], list[int]),
        ([{"a": 1}, {"b": 2.5}], dict[str, float]),
        ([{"a": [1]}, {"b": None}], dict[str, list[int] | None]),
        ([Measurement("m", 1.0, None)], Measurement),
    ],
)
def test_infer_type(values: list[Any], expected: object) -> None:
    assert infer_type(values) == expected


def test_infer_type_accepts_iterators() -> None:
    assert infer_type(iter([1, None, 3])) == int | None


@pytest.mark.parametrize(
    ("values", "listed"),
    [
        ([1, "a"], "'int | str'"),
        ([True, 1], "'bool | int'"),
        (["x", b"x", 2.0, 1], "'bytes | float | int | str'"),
        ([dt.datetime(2020, 1, 1), dt.date(2020, 1, 1)], "'date | datetime'"),
    ],
)
def test_infer_type_mixed_types_error(values: list[Any], listed: str) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        infer_type(values, "mixed")
    assert info.value.field == "mixed"
    assert str(info.value) == (
        f"column 'mixed' has unsupported type {listed}: a column must hold one type"
    )


def test_infer_type_nested_mixed_names_the_path() -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        infer_type([[1, "a"]], "col")
    assert info.value.field == "col[]"


def test_infer_type_rejects_unknown_objects_and_none_keys() -> None:
    with pytest.raises(UnsupportedTypeError, match="column 'c'"):
        infer_type([object()], "c")
    with pytest.raises(UnsupportedTypeError, match="dictionary keys cannot be None"):
        infer_type([{None: 1}], "c")


def test_infer_schema() -> None:
    schema = infer_schema(
        {"a": [1, 2], "b": ["x", None], "c": [[1.0], []], "p": [Path("f"), Path("g")]}
    )
    assert isinstance(schema, Schema)
    assert list(schema) == ["a", "b", "c", "p"]
    assert schema == {"a": int, "b": str | None, "c": list[float], "p": Path}


def test_infer_schema_error_names_column() -> None:
    with pytest.raises(UnsupportedTypeError, match="column 'bad'"):
        infer_schema({"good": [1], "bad": [1, "x"]})


# --------------------------------------------------------------------------- building tables


def test_table_from_rows_typed_output() -> None:
    rows = [
        {"i": 1, "f": 1.5, "s": "a", "b": True, "o": None},
        {"i": 2, "f": 2, "s": "b", "b": False, "o": 3},
    ]
    table = table_from_rows(rows)
    assert table.schema == pa.schema(
        [
            pa.field("i", pa.int64(), nullable=False),
            pa.field("f", pa.float64(), nullable=False),
            pa.field("s", pa.large_string(), nullable=False),
            pa.field("b", pa.bool_(), nullable=False),
            pa.field("o", pa.int64(), nullable=True),
        ]
    )
    assert table.to_pylist() == [
        {"i": 1, "f": 1.5, "s": "a", "b": True, "o": None},
        {"i": 2, "f": 2.0, "s": "b", "b": False, "o": 3},
    ]


def test_table_from_rows_with_explicit_schema_and_zero_rows() -> None:
    table = table_from_rows([], {"a": int, "b": str | None})
    assert table.num_rows == 0
    assert table.schema == Schema({"a": int, "b": str | None}).to_arrow()
    with pytest.raises(InputValidationError, match="cannot infer a schema from zero rows"):
        table_from_rows([])


def test_table_from_rows_schema_order_wins() -> None:
    table = table_from_rows([{"a": 1, "b": "x"}], {"b": str, "a": int})
    assert table.column_names == ["b", "a"]


def test_table_from_rows_different_keys() -> None:
    with pytest.raises(InputValidationError) as info:
        table_from_rows([{"a": 1, "b": 2}, {"a": 1, "c": 3, "d": 4}])
    assert str(info.value) == "row 1 has different keys: missing 'b'; unexpected 'c', 'd'"
    with pytest.raises(InputValidationError, match=r"row 0 has different keys: missing 'b'$"):
        table_from_rows([{"a": 1}], {"a": int, "b": int})


def test_none_in_non_nullable_column() -> None:
    with pytest.raises(InputValidationError) as info:
        table_from_columns({"ok": [1, 2], "a": [1, None]}, {"ok": int, "a": int})
    assert str(info.value) == ("column 'a' has type int but holds None; declare it as int | None")
    table = table_from_columns({"a": [1, None]}, {"a": int | None})
    assert table.column("a").to_pylist() == [1, None]


@pytest.mark.parametrize(
    ("values", "tp", "path"),
    [
        ([[1, None]], list[int], "a[]"),
        ([(1, None)], tuple[int, int], "a[]"),
        ([(1, None)], tuple[int, str], "a.f1"),
        ([{"k": None}], dict[str, int], "a.value"),
        ([Measurement(None, 1.0, None)], Measurement, "a.label"),  # type: ignore[arg-type]
        ([None, [[1], [None]]], list[list[int]] | None, "a[][]"),
        ([[Span(start=None, stop=1)]], list[Span], "a[].start"),  # type: ignore[typeddict-item]
    ],
)
def test_none_in_non_nullable_nested_element(values: list[Any], tp: object, path: str) -> None:
    with pytest.raises(InputValidationError) as info:
        table_from_columns({"a": values}, {"a": tp})
    assert "column 'a' has type" in str(info.value)
    assert f"but {path!r} holds None" in str(info.value)


@pytest.mark.parametrize(
    ("values", "tp"),
    [
        ([[1, None]], list[int | None]),
        ([None, (1, 2)], tuple[int, int] | None),
        ([None, (1, "x")], tuple[int, str] | None),
        ([{"k": None}], dict[str, int | None]),
        ([None, {"k": 1}], dict[str, int] | None),
        ([Measurement("x", 1.0, None), None], Measurement | None),
        ([Span(start=1, stop=None)], Span),
    ],
)
def test_nullable_nested_elements_accept_none(values: list[Any], tp: object) -> None:
    table = table_from_columns({"a": values}, {"a": tp})
    assert column_to_python(table.column("a"), tp) == values


def test_values_not_fitting_type() -> None:
    with pytest.raises(InputValidationError, match=r"column 'a', row 0: 'x' \(str\) is not an int"):
        table_from_columns({"a": ["x"]}, {"a": int})
    with pytest.raises(InputValidationError, match=r"column 'big', row 0: .* is beyond int64"):
        table_from_columns({"big": [2**70]}, {"big": int})
    with pytest.raises(
        InputValidationError, match=r"column 'l', row 1: item 0: 1 \(int\) is not a str"
    ):
        table_from_columns({"l": [["a"], [1]]}, {"l": list[str]})


def test_columns_not_matching_schema() -> None:
    with pytest.raises(InputValidationError) as info:
        table_from_columns({"a": [1], "z": [2], "y": [3]}, {"a": int, "c": str, "b": str})
    assert str(info.value) == (
        "data does not match schema: missing column(s) 'b', 'c'; "
        "column(s) not in the schema 'y', 'z'"
    )


# --------------------------------------------------------------------------- round trips


def test_records_paths_tuples_dicts_round_trip(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    rows = [
        {
            "m": Measurement("a", 1.5, f),
            "o": Outer(Measurement("b", 2.0, None), [1, 2]),
            "span": Span(start=1, stop=None),
            "p": f,
            "maybe_p": None,
            "t": (1, "x"),
            "h": (1.0, 2.0, 3.0),
            "d": {"k": [1, 2], "j": []},
            "ds": {"p": (f, 3)},
            "dt": dt.datetime(2021, 5, 6, 7, 8, 9, 123456),
            "day": dt.date(2021, 5, 6),
        },
        {
            "m": Measurement("c", -1.0, None),
            "o": Outer(Measurement("d", 0.0, f), []),
            "span": Span(start=5, stop=9),
            "p": tmp_path / "g.txt",
            "maybe_p": f,
            "t": (2, "y"),
            "h": (4.0, 5.0, 6.0),
            "d": {},
            "ds": {},
            "dt": dt.datetime(1969, 12, 31, 23, 59, 59),
            "day": dt.date(1900, 1, 1),
        },
    ]
    schema = {
        "m": Measurement,
        "o": Outer,
        "span": Span,
        "p": Path,
        "maybe_p": Path | None,
        "t": tuple[int, str],
        "h": tuple[float, float, float],
        "d": dict[str, list[int]],
        "ds": dict[str, tuple[Path, int]],
        "dt": dt.datetime,
        "day": dt.date,
    }
    table = table_from_rows(rows, schema)
    assert table.schema == Schema(schema).to_arrow()
    assert table.column("p").type == arrow_type(Path)
    assert table.column("p").to_pylist()[0] == {FILE_PATH_FIELD: str(f)}
    for name, tp in schema.items():
        assert column_to_python(table.column(name), tp) == [row[name] for row in rows], name
    back = column_to_python(table.column("o"), Outer)
    assert isinstance(back[0], Outer)
    assert isinstance(back[0].inner, Measurement)
    assert isinstance(back[1].inner.file, Path)
    assert isinstance(column_to_python(table.column("t"), tuple[int, str])[0], tuple)


def test_inferred_round_trip(tmp_path: Path) -> None:
    columns = {
        "p": [tmp_path / "a", tmp_path / "b"],
        "t": [(1, "a"), (2, "b")],
        "d": [{"x": 1.0}, {"y": 2.5}],
        "m": [Measurement("a", 1.0, None), Measurement("b", 2.0, tmp_path)],
        "l": [[1, None], []],
    }
    table = table_from_columns(columns)
    schema = infer_schema(columns)
    for name, tp in schema.items():
        assert column_to_python(table.column(name), tp) == columns[name]


def test_single_value_converters(tmp_path: Path) -> None:
    assert to_arrow_value(tmp_path, Path) == {FILE_PATH_FIELD: str(tmp_path)}
    assert to_arrow_value(None, Path | None) is None
    assert to_arrow_value((1, "a"), tuple[int, str]) == {"f0": 1, "f1": "a"}
    assert to_arrow_value((1, 2), tuple[int, int]) == [1, 2]
    assert to_arrow_value({"a": 1}, dict[str, int]) == {"a": 1}  # passed through as is
    assert to_arrow_value({"a": tmp_path}, dict[str, Path]) == [
        ("a", {FILE_PATH_FIELD: str(tmp_path)})
    ]
    assert to_arrow_value(5, int) == 5
    assert to_python_value({FILE_PATH_FIELD: "x/y"}, Path) == Path("x/y")
    assert to_python_value({"f0": 1, "f1": "a"}, tuple[int, str]) == (1, "a")
    assert to_python_value([1, 2], tuple[int, int]) == (1, 2)
    assert to_python_value([("a", 1)], dict[str, int]) == {"a": 1}
    assert to_python_value(None, tuple[int, str] | None) is None
    assert to_python_value({"label": "x", "value": 1.0, "file": None}, Measurement) == Measurement(
        "x", 1.0, None
    )


def test_column_to_python_chunked() -> None:
    chunked = pa.chunked_array(
        [
            pa.array([{"f0": 1, "f1": "a"}], arrow_type(tuple[int, str])),
            pa.array([{"f0": 2, "f1": "b"}], arrow_type(tuple[int, str])),
        ]
    )
    assert column_to_python(chunked, tuple[int, str]) == [(1, "a"), (2, "b")]
    assert column_to_python(pa.chunked_array([[1], [2, 3]]), int) == [1, 2, 3]


@given(
    sizes=st.lists(st.integers(0, 40), max_size=12),
    rows=st.integers(1, 30),
)
def test_regrouped_cuts_and_joins_tables_to_the_row_count(sizes: list[int], rows: int) -> None:
    start = 0
    tables = []
    for size in sizes:
        tables.append(pa.table({"v": pa.array(range(start, start + size), pa.int64())}))
        start += size
    pieces = list(regrouped(tables, rows))
    assert [p.num_rows for p in pieces[:-1]] == [rows] * (len(pieces) - 1)
    assert not pieces or 0 < pieces[-1].num_rows <= rows
    values = [v for p in pieces for v in p.column("v").to_pylist()]
    assert values == list(range(start))


@pytest.mark.parametrize("rows", [0, -3])
def test_regrouped_refuses_pieces_of_no_rows(rows: int) -> None:
    # Cutting into pieces of no rows would not end (at most a few are taken here, so that
    # without the check this fails instead of hanging).
    tables = [pa.table({"v": [1, 2]})]
    with pytest.raises(ConfigurationError, match=f"not {rows}"):
        list(itertools.islice(regrouped(tables, rows), 5))
