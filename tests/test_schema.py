"""Tests of podline.schema: the Python <-> Arrow type mapping and ``Schema``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from pathlib import Path, PurePosixPath
from typing import Optional, TypedDict, get_type_hints, is_typeddict

import pyarrow as pa
import pytest

from podline.errors import PodlineError, SchemaError, UnsupportedTypeError
from podline.schema import (
    FILE_PATH_FIELD,
    Schema,
    arrow_field,
    arrow_type,
    is_file_type,
    is_optional,
    normalize_type,
    python_type,
    record_fields,
    strip_optional,
    type_name,
)


class Point(TypedDict):
    x: float
    y: float


@dataclasses.dataclass
class Sample:
    name: str
    tags: list[str] | None
    origin: Point


@dataclasses.dataclass
class WithFile:
    data: Path
    weight: int


@dataclasses.dataclass
class BadRecord:
    value: complex


# --------------------------------------------------------------------------- Python -> Arrow

FILE_STRUCT = pa.struct([pa.field(FILE_PATH_FIELD, pa.large_string(), nullable=False)])

SCALAR_CASES = [
    (int, pa.int64()),
    (float, pa.float64()),
    (bool, pa.bool_()),
    (str, pa.large_string()),
    (bytes, pa.large_binary()),
    (dt.datetime, pa.timestamp("us")),
    (dt.date, pa.date32()),
    (Path, FILE_STRUCT),
]

COMPOSITE_CASES = [
    (list[int], pa.large_list(pa.field("item", pa.int64(), nullable=False))),
    (list[str | None], pa.large_list(pa.field("item", pa.large_string(), nullable=True))),
    (
        dict[str, float],
        pa.map_(
            pa.field("key", pa.large_string(), nullable=False),
            pa.field("value", pa.float64(), nullable=False),
        ),
    ),
    (tuple[int, int, int], pa.list_(pa.field("item", pa.int64(), nullable=False), 3)),
    (
        tuple[int, str],
        pa.struct(
            [
                pa.field("f0", pa.int64(), nullable=False),
                pa.field("f1", pa.large_string(), nullable=False),
            ]
        ),
    ),
    (tuple[bytes, ...], pa.large_list(pa.field("item", pa.large_binary(), nullable=False))),
    (
        list[list[Path]],
        pa.large_list(
            pa.field("item", pa.large_list(pa.field("item", FILE_STRUCT, nullable=False)), False)
        ),
    ),
]


@pytest.mark.parametrize(("tp", "expected"), SCALAR_CASES + COMPOSITE_CASES)
def test_arrow_type_of_supported_annotations(tp: object, expected: pa.DataType) -> None:
    field = arrow_field("col", tp)
    assert field.name == "col"
    assert field.type == expected
    assert field.nullable is False
    assert arrow_type(tp) == expected


@pytest.mark.parametrize(("tp", "expected"), SCALAR_CASES + COMPOSITE_CASES)
def test_round_trip_through_arrow(tp: object, expected: pa.DataType) -> None:
    back = python_type(arrow_field("col", tp))
    assert back == normalize_type(tp)
    assert python_type(expected) == normalize_type(tp)


@pytest.mark.parametrize("tp", [tp for tp, _ in SCALAR_CASES + COMPOSITE_CASES])
def test_optional_round_trip(tp: object) -> None:
    field = arrow_field("col", tp | None)  # type: ignore[operator]
    assert field.nullable is True
    assert field.type == arrow_type(tp)
    assert python_type(field) == normalize_type(tp) | None  # type: ignore[operator]


def test_optional_spellings_are_equal() -> None:
    assert normalize_type(Optional[int]) == int | None  # noqa: UP045
    assert normalize_type(typing.Union[str, None]) == str | None  # noqa: UP007
    assert arrow_field("a", Optional[int]) == arrow_field("a", int | None)  # noqa: UP045
    assert python_type(arrow_field("a", Optional[list[int]])) == list[int] | None  # noqa: UP045


def test_typing_aliases_normalize_to_builtins() -> None:
    assert normalize_type(typing.List[int]) == list[int]  # noqa: UP006
    assert normalize_type(typing.Dict[str, int]) == dict[str, int]  # noqa: UP006
    assert normalize_type(typing.Tuple[int, str]) == tuple[int, str]  # noqa: UP006
    assert normalize_type(tuple[int, ...]) == list[int]
    assert normalize_type(type(Path("x"))) is Path
    with pytest.raises(UnsupportedTypeError):  # only concrete Path classes are files
        normalize_type(PurePosixPath)


def test_none_maps_to_null_column() -> None:
    for spelling in (None, type(None)):
        field = arrow_field("n", spelling)
        assert field.type == pa.null()
        assert field.nullable is True
        assert python_type(field) is type(None)
    assert python_type(pa.null()) is type(None)


def test_typeddict_record_to_struct_and_back() -> None:
    field = arrow_field("p", Point)
    assert field.type == pa.struct(
        [pa.field("x", pa.float64(), nullable=False), pa.field("y", pa.float64(), nullable=False)]
    )
    back = python_type(field)
    assert is_typeddict(back)
    assert back.__name__ == "Record"
    assert get_type_hints(back) == {"x": float, "y": float}


def test_dataclass_record_nested() -> None:
    field = arrow_field("s", Sample)
    t = field.type
    assert pa.types.is_struct(t)
    assert [t.field(i).name for i in range(t.num_fields)] == ["name", "tags", "origin"]
    assert t.field("name").type == pa.large_string()
    assert t.field("tags").nullable is True
    assert t.field("tags").type == pa.large_list(pa.field("item", pa.large_string(), False))
    assert t.field("origin").nullable is False
    assert t.field("origin").type == arrow_type(Point)

    back = python_type(field)
    hints = get_type_hints(back)
    assert list(hints) == ["name", "tags", "origin"]
    assert hints["name"] is str
    assert hints["tags"] == list[str] | None
    assert get_type_hints(hints["origin"]) == {"x": float, "y": float}


def test_record_with_path_field() -> None:
    t = arrow_type(WithFile)
    assert t.field("data").type == FILE_STRUCT
    assert get_type_hints(python_type(t)) == {"data": Path, "weight": int}


def test_generated_record_class_is_shared() -> None:
    a = pa.struct([("a", pa.int8()), ("b", pa.string())])
    b = pa.struct([("a", pa.int64()), ("b", pa.large_string())])
    assert python_type(a) is python_type(b)
    different = pa.struct([("a", pa.int64()), ("c", pa.large_string())])
    assert python_type(different) is not python_type(a)
    assert Schema.from_arrow(pa.schema([("r", a)])) == Schema.from_arrow(pa.schema([("r", b)]))


def test_record_fields_order_and_normalization() -> None:
    assert record_fields(Sample) == {"name": str, "tags": list[str] | None, "origin": Point}
    assert list(record_fields(Point)) == ["x", "y"]


# --------------------------------------------------------------------------- Arrow -> Python


@pytest.mark.parametrize(
    ("arrow", "expected"),
    [
        (pa.int8(), int),
        (pa.int16(), int),
        (pa.int32(), int),
        (pa.uint8(), int),
        (pa.uint32(), int),
        (pa.uint64(), int),
        (pa.float16(), float),
        (pa.float32(), float),
        (pa.float64(), float),
        (pa.bool_(), bool),
        (pa.string(), str),
        (pa.large_string(), str),
        (pa.string_view(), str),
        (pa.binary(), bytes),
        (pa.binary_view(), bytes),
        (pa.binary(4), bytes),
        (pa.date32(), dt.date),
        (pa.date64(), dt.date),
        (pa.timestamp("s"), dt.datetime),
        (pa.timestamp("ms"), dt.datetime),
        (pa.timestamp("ns"), dt.datetime),
        (pa.timestamp("us", tz="UTC"), dt.datetime),
        (pa.dictionary(pa.int8(), pa.string()), str),
        (pa.dictionary(pa.int32(), pa.large_string()), str),
        (pa.dictionary(pa.int16(), pa.int32()), int),
        (pa.list_(pa.int32()), list[int | None]),
        (pa.list_(pa.field("item", pa.int32(), nullable=False)), list[int]),
        (pa.list_view(pa.int8()), list[int | None]),
        (pa.large_list_view(pa.float32()), list[float | None]),
        (pa.map_(pa.string(), pa.int8()), dict[str, int | None]),
        (pa.list_(pa.int8(), 3), tuple[int | None, int | None, int | None]),
        (pa.struct([("f0", pa.int8()), ("f1", pa.string())]), tuple[int | None, str | None]),
        (pa.struct([pa.field(FILE_PATH_FIELD, pa.string())]), Path),
    ],
)
def test_arrow_to_python_widening(arrow: pa.DataType, expected: object) -> None:
    assert python_type(arrow) == expected
    assert python_type(pa.field("c", arrow, nullable=False)) == expected
    assert python_type(pa.field("c", arrow, nullable=True)) == expected | None  # type: ignore[operator]


def test_schema_from_arrow_widens_and_marks_nullable() -> None:
    arrow = pa.schema(
        [
            pa.field("a", pa.int8(), nullable=False),
            pa.field("b", pa.string_view()),
            pa.field("c", pa.timestamp("ns"), nullable=False),
        ]
    )
    assert Schema.from_arrow(arrow) == {"a": int, "b": str | None, "c": dt.datetime}


# --------------------------------------------------------------------------- unsupported


@pytest.mark.parametrize(
    ("tp", "field", "fragment"),
    [
        (int | str, "col", "only 'T | None' unions"),
        (typing.Union[int, str], "col", "only 'T | None' unions"),  # noqa: UP007
        (int | str | None, "col", "only 'T | None' unions"),
        (list, "col", "give the element types"),
        (dict, "col", "give the element types"),
        (tuple, "col", "give the element types"),
        (typing.Any, "col", "typing.Any"),
        (object, "col", "object"),
        (set[int], "col", "set[int]"),
        (complex, "col", "complex"),
        (dict[int | None, str], "col", "dictionary keys cannot be None"),
        (list[typing.Any], "col[]", "typing.Any"),
        (dict[str, object], "col.value", "object"),
        (tuple[int, complex], "col[1]", "complex"),
        (BadRecord, "BadRecord.value", "complex"),
    ],
)
def test_unsupported_annotations(tp: object, field: str, fragment: str) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        arrow_field("col", tp)
    err = info.value
    assert err.field == field
    assert f"column {field!r}" in str(err)
    assert fragment in str(err)
    assert isinstance(err, SchemaError)
    assert isinstance(err, TypeError)
    assert isinstance(err, PodlineError)


def test_unsupported_annotation_in_schema_names_the_column() -> None:
    with pytest.raises(
        UnsupportedTypeError, match=r"column 'weird' has unsupported type int \| str"
    ):
        Schema({"ok": int, "weird": int | str})


@pytest.mark.parametrize(
    ("arrow", "field", "fragment"),
    [
        (pa.decimal128(5, 2), "c", "decimal128(5, 2)"),
        (pa.duration("s"), "c", "duration[s]"),
        (pa.time64("us"), "c", "time64[us]"),
        (pa.month_day_nano_interval(), "c", "month_day_nano_interval"),
        (pa.list_(pa.decimal128(5, 2)), "c[]", "decimal128(5, 2)"),
        (pa.struct([("a", pa.duration("ms"))]), "c.a", "duration[ms]"),
        (pa.map_(pa.string(), pa.time32("s")), "c.value", "time32[s]"),
    ],
)
def test_unsupported_arrow_types(arrow: pa.DataType, field: str, fragment: str) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        python_type(pa.field("c", arrow))
    assert info.value.field == field
    assert f"column {field!r}" in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("arrow", "hint"),
    [
        (pa.decimal128(10, 2), "to pa.string() to keep every digit"),
        (pa.duration("ms"), "pa.int64()"),
    ],
)
def test_decimals_and_durations_say_what_to_do(arrow: pa.DataType, hint: str) -> None:
    """A user reading a Parquet file of prices got "unsupported type" and no way forward."""
    with pytest.raises(UnsupportedTypeError, match="cast the column") as info:
        python_type(pa.field("price", arrow))
    assert hint in str(info.value)


def test_unsupported_nested_arrow_type_in_schema_names_the_path() -> None:
    arrow = pa.schema([("x", pa.large_list(pa.struct([("d", pa.decimal128(3, 1))])))])
    with pytest.raises(UnsupportedTypeError, match=r"column 'x\[\]\.d'"):
        Schema.from_arrow(arrow)


# --------------------------------------------------------------------------- helpers


def test_optional_helpers() -> None:
    assert is_optional(int | None)
    assert is_optional(Optional[int])  # noqa: UP045
    assert not is_optional(int)
    assert not is_optional(list[int | None])
    assert strip_optional(int | None) is int
    assert strip_optional(list[int] | None) == list[int]
    assert strip_optional(str) is str


def test_is_file_type() -> None:
    assert is_file_type(Path)
    assert is_file_type(type(Path(".")))
    assert not is_file_type(str)
    assert not is_file_type(Path | None)


@pytest.mark.parametrize(
    ("tp", "name"),
    [
        (int, "int"),
        (None, "None"),
        (Path, "Path"),
        (dt.datetime, "datetime"),
        (Optional[list[str]], "list[str] | None"),  # noqa: UP045
        (dict[str, tuple[int, bytes]], "dict[str, tuple[int, bytes]]"),
        (tuple[float, ...], "list[float]"),
        (Point, "Point{x: float, y: float}"),
        (
            Sample | None,
            "Sample{name: str, tags: list[str] | None, origin: Point{x: float, y: float}} | None",
        ),
    ],
)
def test_type_name(tp: object, name: str) -> None:
    assert type_name(tp) == name


# --------------------------------------------------------------------------- Schema


def test_schema_mapping_protocol_and_order() -> None:
    s = Schema({"b": int, "a": Optional[str]})  # noqa: UP045
    assert list(s) == ["b", "a"]
    assert len(s) == 2
    assert s["a"] == str | None
    assert dict(s) == {"b": int, "a": str | None}
    assert "a" in s
    assert "z" not in s


def test_schema_from_pairs() -> None:
    assert Schema([("a", int), ("b", str)]) == Schema({"a": int, "b": str})


def test_schema_is_immutable() -> None:
    source = {"a": int}
    s = Schema(source)
    source["b"] = str
    assert list(s) == ["a"]
    with pytest.raises(TypeError):
        s["b"] = str  # type: ignore[index]
    with pytest.raises(TypeError):
        del s["a"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        s.extra = 1  # type: ignore[attr-defined]


def test_schema_equality_and_hash() -> None:
    a = Schema({"x": int, "y": Optional[str]})  # noqa: UP045
    b = Schema({"y": str | None, "x": int})
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a == {"x": int, "y": str | None}
    assert a != {"x": int, "y": str}
    assert a != Schema({"x": int, "y": str})
    assert a != Schema({"x": float, "y": str | None})
    assert a.__eq__(42) is NotImplemented
    assert a != 42


def test_optional_fields_take_part_in_equality() -> None:
    plain = Schema({"x": int, "y": str})
    opt = Schema({"x": int, "y": str}, optional=["y"])
    assert plain != opt
    assert hash(plain) != hash(opt)
    assert opt != {"x": int, "y": str}
    assert opt == Schema({"y": str, "x": int}, optional={"y"})
    assert opt.optional == frozenset({"y"})
    assert opt.required == ("x",)
    assert plain.required == ("x", "y")


def test_schema_repr() -> None:
    s = Schema({"a": int, "b": list[str] | None, "c": Optional[dict[str, float]]}, optional=["b"])  # noqa: UP045
    assert repr(s) == "Schema(a: int, b: list[str] | None?, c: dict[str, float] | None)"
    assert repr(Schema()) == "Schema()"


def test_schema_identity_structure_is_sorted() -> None:
    s = Schema({"b": int, "a": str | None}, optional=["a"])
    assert s.identity_structure() == (("a", "str | None", True), ("b", "int", False))
    assert Schema({"a": str | None, "b": int}, optional=["a"]).identity_structure() == (
        s.identity_structure()
    )


@pytest.mark.parametrize("name", ["", 3, None])
def test_schema_rejects_bad_names(name: object) -> None:
    with pytest.raises(SchemaError, match="column names must be non-empty strings"):
        Schema([(name, int)])  # type: ignore[list-item]


def test_schema_rejects_duplicates_and_unknown_optional() -> None:
    with pytest.raises(SchemaError, match="duplicate column 'a' in schema"):
        Schema([("a", int), ("a", str)])
    with pytest.raises(SchemaError, match=r"optional field\(s\) 'y', 'z' are not in the schema"):
        Schema({"a": int}, optional=["z", "y", "a"])


def test_schema_missing_key_lists_sorted_columns() -> None:
    s = Schema({"b": int, "a": str})
    with pytest.raises(KeyError, match="no column 'zz'; columns are 'a', 'b'"):
        s["zz"]


def test_schema_arrow_round_trip() -> None:
    s = Schema({"a": int, "b": list[float] | None, "c": dict[str, bytes], "d": tuple[int, str]})
    arrow = s.to_arrow()
    assert arrow.names == ["a", "b", "c", "d"]
    assert arrow.field("b").nullable
    assert not arrow.field("a").nullable
    assert Schema.from_arrow(arrow) == s


def test_select() -> None:
    s = Schema({"a": int, "b": str, "c": float}, optional=["b", "c"])
    sub = s.select(["c", "a"])
    assert list(sub) == ["c", "a"]
    assert sub.optional == frozenset({"c"})
    with pytest.raises(
        SchemaError, match=r"unknown column\(s\) 'x', 'y'; columns are 'a', 'b', 'c'"
    ):
        s.select(["y", "a", "x"])


def test_drop() -> None:
    s = Schema({"a": int, "b": str, "c": float}, optional=["b"])
    rest = s.drop(["b"])
    assert list(rest) == ["a", "c"]
    assert rest.optional == frozenset()
    assert s.drop([]) == s
    with pytest.raises(SchemaError, match=r"unknown column\(s\) 'q', 'z'"):
        s.drop(["z", "q"])


def test_rename() -> None:
    s = Schema({"a": int, "b": str}, optional=["b"])
    renamed = s.rename({"b": "beta"})
    assert list(renamed) == ["a", "beta"]
    assert renamed["beta"] is str
    assert renamed.optional == frozenset({"beta"})
    assert s.rename({"a": "b", "b": "a"}) == Schema({"b": int, "a": str}, optional=["a"])
    with pytest.raises(SchemaError, match=r"renaming makes duplicate column\(s\) 'b'"):
        s.rename({"a": "b"})
    with pytest.raises(SchemaError, match=r"unknown column\(s\) 'nope'"):
        s.rename({"nope": "x"})


def test_merge() -> None:
    left = Schema({"a": int, "b": str}, optional=["b"])
    merged = left.merge({"c": float, "a": int})
    assert list(merged) == ["a", "b", "c"]
    assert merged.optional == frozenset({"b"})
    other = Schema({"c": float}, optional=["c"])
    assert left.merge(other).optional == frozenset({"b", "c"})


def test_merge_conflicts_are_listed_sorted() -> None:
    left = Schema({"a": int, "b": str, "c": float})
    with pytest.raises(SchemaError) as info:
        left.merge({"b": int, "a": float, "c": float})
    assert str(info.value) == "conflicting column types: 'a' (int vs float), 'b' (str vs int)"
