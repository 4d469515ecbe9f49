"""Tests of podline.hashing: ContentHash, value hashes, Arrow row/table hashes, files, identity."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import math
import os
import re
import struct
import time
import types
import uuid
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pyarrow as pa
import pytest

from podline.conversion import table_from_rows
from podline.errors import HashingError, PodlineError
from podline.hashing import (
    HASH_SCHEME,
    ContentHash,
    Identifiable,
    IdentityMixin,
    PipelineElement,
    arrow_encoding,
    clear_file_hash_cache,
    digest,
    encode_value,
    file_hash_cache_info,
    files,
    hash_file,
    hash_table,
    hash_value,
    logical_type,
    row_hash_strings,
    row_hashes_hex,
)
from podline.schema import Schema

# --------------------------------------------------------------------------- ContentHash


def test_content_hash_string_round_trip() -> None:
    h = ContentHash.of(b"hello")
    assert h.scheme == HASH_SCHEME == "pod3"
    assert h.digest == hashlib.sha256(b"hello").digest()
    assert str(h) == f"pod3:{hashlib.sha256(b'hello').hexdigest()}"
    assert h.hex == hashlib.sha256(b"hello").hexdigest()
    assert h.short() == h.hex[:12]
    assert h.short(4) == h.hex[:4]
    assert repr(h) == f"ContentHash({str(h)!r})"
    assert ContentHash.parse(str(h)) == h
    assert hash(ContentHash.parse(str(h))) == hash(h)


def test_content_hash_is_immutable() -> None:
    h = ContentHash.of(b"x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.scheme = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abcdef",
        ":abcd",
        "pod1:",
        "pod1:abc",
        "pod1:zz",
        "pod1:ab cd",
        "pod1: abcd",
        "pod1:abcd:ef",
    ],
)
def test_content_hash_parse_rejects_bad_strings(text: str) -> None:
    with pytest.raises(HashingError):
        ContentHash.parse(text)


@pytest.mark.parametrize("scheme", ["", "a:b"])
def test_content_hash_rejects_bad_scheme(scheme: str) -> None:
    with pytest.raises(HashingError, match="invalid hash scheme id"):
        ContentHash(scheme, b"\x00" * 32)


# --------------------------------------------------------------------------- hash_value


def test_hash_value_is_deterministic() -> None:
    value = {"b": [1, 2.5, "x", None], "a": ({"n": b"\x00"}, frozenset({3, 1, 2}))}
    assert hash_value(value) == hash_value(value)
    rebuilt = {"a": ({"n": b"\x00"}, frozenset({1, 2, 3})), "b": [1, 2.5, "x", None]}
    assert hash_value(rebuilt) == hash_value(value)
    assert isinstance(hash_value(value), ContentHash)
    assert hash_value(value).scheme == HASH_SCHEME


@pytest.mark.parametrize(
    "values",
    [
        [1, 1.0, True, "1", b"1", [1], (1,), {1}, {1: None}, None, ContentHash.of(b"1")],
        [[], (), set(), {}, "", b"", 0, 0.0, False, None],
        [[1, 2], (1, 2), [2, 1], [[1], 2], [1, [2]], {1, 2} | {3}],
        [{"a": 1}, {"a": 1.0}, {"a": "1"}, {"b": 1}, [("a", 1)], {"a": [1]}],
        [dt.date(2020, 1, 1), dt.datetime(2020, 1, 1), "2020-01-01"],
        [
            dt.datetime(2020, 1, 1, 12),
            dt.datetime(2020, 1, 1, 12, tzinfo=dt.UTC),
            dt.datetime(2020, 1, 1, 12, 0, 0, 1),
        ],
        [0, -1, 1, 127, 128, -128, -129, 255, 256, 2**63, 2**64, -(2**64), 2**200],
        ["a", "a\x00", "\x00a", "ab", "b", "é", "e\u0301"],
        [uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=1).bytes],
    ],
)
def test_hash_value_distinctions(values: list[Any]) -> None:
    hashes = [hash_value(v) for v in values]
    assert len(set(hashes)) == len(values)


def test_hash_value_mapping_and_set_order_independent() -> None:
    forward = {f"k{i}": i for i in range(50)}
    backward = dict(reversed(list(forward.items())))
    assert list(forward) != list(backward)
    assert hash_value(forward) == hash_value(backward)
    assert hash_value(types.MappingProxyType(forward)) == hash_value(forward)
    assert hash_value({3, 1, 2}) == hash_value({2, 3, 1}) == hash_value(frozenset([1, 2, 3]))
    assert hash_value({"x", 1, (2, "y")}) == hash_value({(2, "y"), "x", 1})
    assert hash_value({1: "a", "1": "b"}) != hash_value({1: "b", "1": "a"})


def test_hash_value_float_canonicalization() -> None:
    # A function can tell -0.0 from 0.0 (math.copysign, atan2, 1/x): they hash apart.
    assert hash_value(-0.0) != hash_value(0.0)
    assert hash_value([-0.0]) != hash_value([0.0])
    nan_bits = np.array([0x7FF8000000000001], dtype=np.uint64).view(np.float64)[0]
    assert math.isnan(nan_bits)
    assert hash_value(float("nan")) == hash_value(-float("nan")) == hash_value(float(nan_bits))
    assert hash_value(float("nan")) != hash_value(float("inf"))
    assert hash_value(float("inf")) != hash_value(float("-inf"))
    assert hash_value(1.0) != hash_value(1.0 + 2**-52)


def test_hash_value_bytes_like_equal() -> None:
    assert hash_value(b"ab") == hash_value(bytearray(b"ab")) == hash_value(memoryview(b"ab"))


def test_hash_value_embeds_content_hash() -> None:
    inner = ContentHash.of(b"inner")
    other = ContentHash.of(b"other")
    assert hash_value([inner]) == hash_value([ContentHash.parse(str(inner))])
    assert hash_value([inner]) != hash_value([other])
    assert hash_value(inner) != hash_value(str(inner))
    assert hash_value(inner) != hash_value(inner.digest)
    assert hash_value(ContentHash("x1", inner.digest)) != hash_value(inner)


def test_hash_value_enum_uuid_dataclass() -> None:
    class Color(enum.Enum):
        RED = 1
        BLUE = 2

    class Size(enum.IntEnum):
        SMALL = 1

    @dataclasses.dataclass
    class A:
        x: int
        y: list[str]

    @dataclasses.dataclass
    class B:
        x: int
        y: list[str]

    assert hash_value(Color.RED) != hash_value(1)
    assert hash_value(Color.RED) != hash_value(Color.BLUE)
    assert hash_value(Size.SMALL) != hash_value(1)
    assert hash_value(Size.SMALL) != hash_value(Color.RED)
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert hash_value(u) == hash_value(uuid.UUID(str(u)))
    assert hash_value(A(1, ["a"])) == hash_value(A(1, ["a"]))
    assert hash_value(A(1, ["a"])) != hash_value(A(1, ["b"]))
    assert hash_value(A(1, ["a"])) != hash_value(B(1, ["a"]))
    assert hash_value(A(1, ["a"])) != hash_value({"x": 1, "y": ["a"]})


def test_hash_value_type_annotations() -> None:
    assert hash_value(int) != hash_value("int")
    assert hash_value(int) != hash_value(float)
    assert hash_value(Optional[int]) == hash_value(int | None)  # noqa: UP045
    assert hash_value(tuple[int, ...]) == hash_value(list[int])
    assert hash_value(list[int]) != hash_value(list[int | None])
    assert hash_value(dict[str, int]) != hash_value(dict[int, str])
    # A class that is not a podline type is identified by its qualified name.
    assert hash_value(object) != hash_value(dict)
    with pytest.raises(HashingError, match=r"cannot hash the type annotation int \| str$"):
        hash_value(int | str)
    with pytest.raises(HashingError, match="cannot hash the type annotation"):
        hash_value(list[object])


def test_hash_value_schema_uses_identity_structure() -> None:
    a = Schema({"x": int, "y": str})
    assert hash_value(a) == hash_value(Schema({"y": str, "x": int}))
    assert hash_value(a) != hash_value(Schema({"x": int, "y": str}, optional=["y"]))
    assert hash_value(a) != hash_value(a.identity_structure())


def test_hash_value_tables_and_paths(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2]})
    assert hash_value(table) == hash_value(pa.table({"a": pa.array([1, 2], pa.int8())}))
    assert hash_value(table) == hash_value(table.to_batches()[0])
    assert hash_value(table) != hash_value(pa.table({"a": [2, 1]}))
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_bytes(b"same")
    two.write_bytes(b"same")
    assert hash_value(one) == hash_value(two)
    assert hash_value(one) != hash_value(str(one))
    with pytest.raises(HashingError, match="does not exist"):
        hash_value(tmp_path / "missing.txt")


def test_hash_value_unsupported_object_names_type() -> None:
    class Opaque:
        pass

    with pytest.raises(HashingError, match=r"cannot hash a value of type .*Opaque"):
        hash_value(Opaque())
    with pytest.raises(HashingError, match=r"builtins\.object"):
        hash_value([1, {"k": object()}])
    with pytest.raises(HashingError, match=r"numpy\.int64"):
        hash_value(np.int64(1))
    with pytest.raises(HashingError, match=r"builtins\.complex"):
        hash_value(1j)
    assert issubclass(HashingError, PodlineError)


def test_hash_value_self_reference() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(HashingError, match="cannot hash a self-referencing list"):
        hash_value(loop)
    mapping: dict[str, Any] = {}
    mapping["me"] = [mapping]
    with pytest.raises(HashingError, match="self-referencing dict"):
        hash_value(mapping)


def test_hash_value_shared_substructure_is_not_a_cycle() -> None:
    shared = [1, 2]
    assert hash_value([shared, shared]) == hash_value([[1, 2], [1, 2]])


def test_encode_value_is_length_prefixed() -> None:
    # Concatenation ambiguity: ["ab", "c"] vs ["a", "bc"] must differ.
    assert encode_value(["ab", "c"]) != encode_value(["a", "bc"])
    assert hash_value(["ab", "c"]) != hash_value(["a", "bc"])
    assert hash_value(("a", ("b",))) != hash_value((("a",), "b"))


# --------------------------------------------------------------------------- row hashes


def rows(table: pa.Table) -> list[str]:
    return row_hash_strings(table).to_pylist()


def col(array: Any, name: str = "c") -> list[str]:
    return rows(pa.table({name: array}))


BASE = pa.table(
    {
        "i": pa.array([1, -2, None, 4], pa.int64()),
        "f": pa.array([1.5, None, -0.0, 2.25], pa.float64()),
        "s": pa.array(["a", "", None, "ü"], pa.large_string()),
        "b": pa.array([b"x", None, b"", b"\x00"], pa.large_binary()),
        "l": pa.array([[1], [], None, [2, 3]], pa.large_list(pa.int64())),
        "t": pa.array([True, False, None, True]),
    }
)


def test_row_hash_strings_format() -> None:
    hashes = rows(BASE)
    assert len(hashes) == BASE.num_rows
    assert len(set(hashes)) == BASE.num_rows
    for text in hashes:
        assert ContentHash.parse(text).scheme == HASH_SCHEME
        assert len(ContentHash.parse(text).digest) == 32
    assert row_hashes_hex(BASE).to_pylist() == [h.split(":", 1)[1] for h in hashes]
    assert row_hashes_hex(BASE).type == pa.large_string()


def test_row_hashes_invariant_under_column_order() -> None:
    reordered = BASE.select(list(reversed(BASE.column_names)))
    assert rows(reordered) == rows(BASE)
    assert hash_table(reordered) == hash_table(BASE)


def test_row_hashes_of_record_batch() -> None:
    assert rows(BASE.to_batches()[0]) == rows(BASE)  # type: ignore[arg-type]


def test_row_hash_column_subset() -> None:
    assert row_hash_strings(BASE, ["s", "i"]).to_pylist() == rows(BASE.select(["i", "s"]))
    with pytest.raises(HashingError, match="cannot hash missing column\\(s\\) 'x', 'y'"):
        row_hash_strings(BASE, ["y", "i", "x"])
    with pytest.raises(HashingError, match="missing column"):
        hash_table(BASE, ["nope"])


STRINGS = ["a", "bb", None, "", "ü"]


@pytest.mark.parametrize(
    "variant",
    [
        pa.array(STRINGS, pa.string()),
        pa.array(STRINGS, pa.string_view()),
        pa.array(STRINGS, pa.string()).dictionary_encode(),
        pa.array(STRINGS, pa.large_string()).dictionary_encode(),
        pa.chunked_array([pa.array(STRINGS[:2]), pa.array(STRINGS[2:], pa.string())]),
    ],
)
def test_string_physical_variants(variant: Any) -> None:
    assert col(variant) == col(pa.array(STRINGS, pa.large_string()))


@pytest.mark.parametrize(
    "variant",
    [
        pa.array([b"ab", None, b""], pa.binary()),
        pa.array([b"ab", None, b""], pa.binary_view()),
    ],
)
def test_binary_physical_variants(variant: pa.Array) -> None:
    assert col(variant) == col(pa.array([b"ab", None, b""], pa.large_binary()))


def test_fixed_size_binary_equals_binary() -> None:
    assert col(pa.array([b"ab", None], pa.binary(2))) == col(pa.array([b"ab", None], pa.binary()))


@pytest.mark.parametrize("int_type", [pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint64()])
def test_integer_widths(int_type: pa.DataType) -> None:
    values = [0, 1, 100, None, 7]
    assert col(pa.array(values, int_type)) == col(pa.array(values, pa.int64()))


def test_signed_integer_widths_with_negatives() -> None:
    values = [-128, -1, 0, 127]
    assert col(pa.array(values, pa.int8())) == col(pa.array(values, pa.int32()))
    assert col(pa.array(values, pa.int32())) == col(pa.array(values, pa.int64()))


def test_uint64_out_of_int64_range_raises() -> None:
    with pytest.raises(HashingError, match="column 'big': integer outside the int64 range"):
        row_hash_strings(pa.table({"big": pa.array([2**64 - 1], pa.uint64())}))
    assert col(pa.array([2**63 - 1], pa.uint64())) == col(pa.array([2**63 - 1], pa.int64()))


def test_float_widths_for_representable_values() -> None:
    values = [0.5, -2.25, None, 1024.0, float("inf")]
    assert col(pa.array(values, pa.float32())) == col(pa.array(values, pa.float64()))
    assert col(pa.array([0.5], pa.float16())) == col(pa.array([0.5], pa.float64()))
    assert col(pa.array([0.1], pa.float32())) != col(pa.array([0.1], pa.float64()))


def test_float_canonical_zero_and_nan() -> None:
    nan_bits = np.array([0x7FF8000000000001, 0xFFF8000000000000], dtype=np.uint64)
    odd_nans = pa.array(nan_bits.view(np.float64))
    assert col(odd_nans) == col(pa.array([float("nan"), float("nan")]))
    assert col(pa.array([-0.0])) != col(pa.array([0.0]))
    assert col(pa.array([-0.0], pa.float32())) == col(pa.array([-0.0]))
    assert col(pa.array([float("nan")])) != col(pa.array([None], pa.float64()))


def test_chunking_does_not_matter() -> None:
    values = list(range(10))
    one = pa.chunked_array([values])
    split_a = pa.chunked_array([values[:3], values[3:]])
    split_b = pa.chunked_array([values[:1], values[1:7], values[7:]])
    table = pa.table({"a": one, "b": pa.chunked_array([[str(v) for v in values]])})
    other = pa.table(
        {
            "a": split_a,
            "b": pa.chunked_array([[str(v) for v in values[:6]], [str(v) for v in values[6:]]]),
        }
    )
    assert col(one) == col(split_a) == col(split_b)
    assert rows(table) == rows(other)
    assert hash_table(table) == hash_table(other)


def test_batching_does_not_matter(monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.table(
        {
            "x": list(range(20)),
            "l": [[i] * (i % 3) for i in range(20)],
            "m": pa.array([[("k", i)] for i in range(20)], pa.map_(pa.string(), pa.int64())),
        }
    )
    expected = rows(table)
    monkeypatch.setattr(arrow_encoding, "BATCH_ROWS", 3)
    assert rows(table) == expected


def test_slices_hash_like_fresh_arrays() -> None:
    table = pa.table(
        {
            "l": pa.array([[1], [], None, [2, 3], [4]], pa.list_(pa.int64())),
            "f": pa.array([[1, 2], [3, 4], None, [5, 6], [7, 8]], pa.list_(pa.int64(), 2)),
            "s": pa.array([{"a": 1}, None, {"a": 3}, {"a": 4}, {"a": 5}]),
            "m": pa.array(
                [[("a", 1)], [], None, [("b", 2), ("c", 3)], [("d", 4)]],
                pa.map_(pa.string(), pa.int64()),
            ),
            "t": pa.array(["v", "w", None, "x", "y"]),
        }
    )
    full = rows(table)
    for start, length in [(1, 4), (2, 2), (3, 1)]:
        sliced = table.slice(start, length)
        assert rows(sliced) == full[start : start + length]
        assert rows(pa.Table.from_pylist(sliced.to_pylist(), schema=table.schema)) == rows(sliced)


@pytest.mark.parametrize(
    "variant",
    [
        pa.array([[1], [], None, [2, 3]], pa.list_(pa.int64())),
        pa.array([[1], [], None, [2, 3]], pa.large_list(pa.int32())),
        pa.array([[1], [], None, [2, 3]], pa.list_view(pa.int64())),
        pa.array([[1], [], None, [2, 3]], pa.large_list_view(pa.int8())),
    ],
)
def test_list_physical_variants(variant: pa.Array) -> None:
    assert col(variant) == col(pa.array([[1], [], None, [2, 3]], pa.large_list(pa.int64())))


def test_list_view_with_shared_and_unordered_offsets() -> None:
    view = pa.ListViewArray.from_arrays(
        [3, 0, 1, 0, 1],
        [0, 1, 2, 5, 1],
        [1, 2, 3, 4, 5, 6],
        mask=pa.array([False, False, False, True, False]),
    )
    plain = pa.array(view.to_pylist(), pa.large_list(pa.int64()))
    assert plain.to_pylist() == [[], [1], [2, 3], None, [2]]
    assert col(view) == col(plain)
    assert col(view.slice(1)) == col(plain.slice(1))


def test_empty_lists_and_maps() -> None:
    # Columns whose child arrays are empty (every list empty or null) still hash.
    assert len(set(col(pa.array([[], None], pa.list_(pa.int64()))))) == 2
    assert len(set(col(pa.array([{}, None], pa.map_(pa.string(), pa.int64()))))) == 2
    assert col(pa.array([[]], pa.list_(pa.string()))) == col(
        pa.array([[]], pa.large_list(pa.string()))
    )
    assert col(pa.array([[]], pa.list_(pa.int64()))) != col(pa.array([[]], pa.list_(pa.string())))
    assert col(pa.array([[[]]], pa.list_(pa.list_(pa.float64())))) != col(
        pa.array([[]], pa.list_(pa.list_(pa.float64())))
    )


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamp_units(unit: str) -> None:
    instants = [dt.datetime(2020, 1, 2, 3, 4, 5), None, dt.datetime(1960, 6, 1, 0, 0, 1)]
    assert col(pa.array(instants, pa.timestamp(unit))) == col(pa.array(instants, pa.timestamp("s")))


def test_timestamp_subsecond_and_timezone() -> None:
    a = [dt.datetime(1969, 12, 31, 23, 59, 59, 500000)]
    assert col(pa.array(a, pa.timestamp("ms"))) == col(pa.array(a, pa.timestamp("ns")))
    b = [dt.datetime(1969, 12, 31, 23, 59, 59, 500001)]
    assert col(pa.array(a, pa.timestamp("us"))) != col(pa.array(b, pa.timestamp("us")))
    naive = pa.array(a, pa.timestamp("us"))
    assert col(naive) != col(naive.cast(pa.timestamp("us", tz="UTC")))
    utc = naive.cast(pa.timestamp("us", tz="UTC"))
    assert col(utc) == col(naive.cast(pa.timestamp("ns", tz="UTC")))


def test_date_variants() -> None:
    days = [dt.date(2020, 1, 2), None, dt.date(1900, 3, 4)]
    assert col(pa.array(days, pa.date32())) == col(pa.array(days, pa.date64()))
    assert col(pa.array(days[:1], pa.date32())) != col(pa.array([dt.datetime(2020, 1, 2)]))


def test_a_date64_with_a_time_of_day_hashes_as_the_date_python_sees() -> None:
    # Arrow wants date64 values whole days, but does not check; Python reads the day such a
    # value falls in, so it hashes as that date (it raised pyarrow's "Casting from date64[ms]
    # to date32[day] would lose data", naming no column).
    day = 86_400_000
    odd = pa.array([19_723 * day + 3_600_000, -1, None], pa.date64())
    assert odd.to_pylist() == [dt.date(2024, 1, 1), dt.date(1969, 12, 31), None]
    assert col(odd) == col(pa.array(odd.to_pylist(), pa.date32()))


def test_map_entry_order_matters() -> None:
    # A function iterating a dict sees its order, so two orders are two values.
    t = pa.map_(pa.string(), pa.int64())
    a = pa.array([[("a", 1), ("b", 2), ("c", 3)], None], t)
    b = pa.array([[("c", 3), ("a", 1), ("b", 2)], None], t)
    assert col(a)[0] != col(b)[0]
    assert col(a)[1] == col(b)[1]
    assert col(a) != col(pa.array([[("a", 2), ("b", 1), ("c", 3)], None], t))
    assert col(b) == col(
        pa.array([[("c", 3), ("a", 1), ("b", 2)], None], pa.map_(pa.large_string(), pa.int8()))
    )
    # Entries of a sliced map column hash as the same entries unsliced.
    long = pa.array([[("x", 0)], [("a", 1), ("b", 2), ("c", 3)], [("y", 9)]], t)
    assert col(long.slice(1, 1)) == col(a.slice(0, 1))


def test_struct_field_order_does_not_matter() -> None:
    a = pa.array([{"x": 1, "y": "a"}, None])
    b = pa.array([{"y": "a", "x": 1}, None])
    assert a.type != b.type
    assert col(a) == col(b)
    assert col(a) != col(pa.array([{"x": 1, "z": "a"}, None]))


def test_nullability_is_not_part_of_the_type() -> None:
    nullable = pa.table({"c": [1, 2]})
    required = nullable.cast(pa.schema([pa.field("c", pa.int64(), nullable=False)]))
    assert rows(nullable) == rows(required)


@pytest.mark.parametrize("column", BASE.column_names)
@pytest.mark.parametrize("row", range(BASE.num_rows))
def test_changing_one_value_changes_only_that_row(column: str, row: int) -> None:
    replacements = {
        "i": 99,
        "f": 9.75,
        "s": "changed",
        "b": b"changed",
        "l": [7, 7],
        "t": None,
    }
    values = BASE.column(column).to_pylist()
    values[row] = replacements[column] if values[row] != replacements[column] else 0
    if column == "t" and values[row] == 0:
        values[row] = False
    changed = BASE.set_column(
        BASE.column_names.index(column), column, pa.array(values, BASE.schema.field(column).type)
    )
    before, after = rows(BASE), rows(changed)
    assert before[row] != after[row]
    assert [h for i, h in enumerate(before) if i != row] == [
        h for i, h in enumerate(after) if i != row
    ]
    assert hash_table(changed) != hash_table(BASE)


def test_renaming_a_column_changes_hashes() -> None:
    renamed = BASE.rename_columns(["i2" if n == "i" else n for n in BASE.column_names])
    assert all(a != b for a, b in zip(rows(BASE), rows(renamed), strict=True))


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (pa.array([1, 2]), pa.array([1.0, 2.0])),
        (pa.array(["a"]), pa.array([b"a"])),
        (pa.array([[1, 2]]), pa.array([[1, 2]], pa.list_(pa.int64(), 2))),
        (pa.array([True]), pa.array([1])),
        (pa.array([dt.date(1970, 1, 2)]), pa.array([1])),
        (pa.array([dt.date(1970, 1, 1)]), pa.array([dt.datetime(1970, 1, 1)])),
        (
            pa.array([(1, "a")], pa.struct([("f0", pa.int64()), ("f1", pa.string())])),
            pa.array([[("f0", 1)]], pa.map_(pa.string(), pa.int64())),
        ),
        (pa.array([None], pa.null()), pa.array([None], pa.int64())),
        (pa.array([["a"]]), pa.array(["a"])),
    ],
)
def test_type_changes_change_hashes(left: pa.Array, right: pa.Array) -> None:
    assert logical_type(left.type) != logical_type(right.type)
    assert col(left) != col(right)


@pytest.mark.parametrize(
    ("value_array", "null_array"),
    [
        (pa.array([0]), pa.array([None], pa.int64())),
        (pa.array([0.0]), pa.array([None], pa.float64())),
        (pa.array([False]), pa.array([None], pa.bool_())),
        (pa.array([""]), pa.array([None], pa.string())),
        (pa.array([b""]), pa.array([None], pa.binary())),
        (pa.array([[]], pa.list_(pa.int64())), pa.array([None], pa.list_(pa.int64()))),
        (pa.array([[None]], pa.list_(pa.int64())), pa.array([[]], pa.list_(pa.int64()))),
        (pa.array([{"a": None}]), pa.array([None], pa.struct([("a", pa.int64())]))),
        (pa.array([dt.date(1970, 1, 1)]), pa.array([None], pa.date32())),
        (pa.array([dt.datetime(1970, 1, 1)]), pa.array([None], pa.timestamp("us"))),
        (
            pa.array([[]], pa.map_(pa.string(), pa.int64())),
            pa.array([None], pa.map_(pa.string(), pa.int64())),
        ),
    ],
)
def test_null_differs_from_every_value(value_array: pa.Array, null_array: pa.Array) -> None:
    assert col(value_array) != col(null_array)


def test_nested_values_affect_hashes() -> None:
    a = pa.array([{"k": [1, 2], "m": {"x": 1.5}}])
    b = pa.array([{"k": [1, 3], "m": {"x": 1.5}}])
    c = pa.array([{"k": [1, 2], "m": {"x": 2.5}}])
    assert len({col(a)[0], col(b)[0], col(c)[0]}) == 3
    la = pa.array([[["a", "b"], ["c"]]])
    lb = pa.array([[["a"], ["b", "c"]]])
    assert col(la) != col(lb)


def test_logical_type_names() -> None:
    assert logical_type(pa.int8()) == "int"
    assert logical_type(pa.dictionary(pa.int8(), pa.string())) == "str"
    assert logical_type(pa.binary(3)) == "bytes"
    assert logical_type(pa.timestamp("s")) == "datetime"
    assert logical_type(pa.timestamp("ns", tz="Europe/Paris")) == "datetime[Europe/Paris]"
    assert logical_type(pa.date64()) == "date"
    assert logical_type(pa.struct([("b", pa.int8()), ("a", pa.string())])) == "struct{a:str,b:int}"
    assert logical_type(pa.map_(pa.string(), pa.list_(pa.float32()))) == "map[str,list[float]]"
    assert logical_type(pa.list_(pa.bool_(), 3)) == "fixed_list[bool;3]"
    assert logical_type(pa.large_list_view(pa.null())) == "list[null]"
    assert logical_type(Schema({"p": Path}).to_arrow().field("p").type) == "path"
    with pytest.raises(HashingError, match="column 'x': Arrow type decimal128"):
        logical_type(pa.decimal128(4, 2), "x")


def test_unsupported_arrow_type_raises_naming_column() -> None:
    table = pa.table({"d": pa.array([1], pa.decimal128(5, 2))})
    with pytest.raises(HashingError, match="column 'd'"):
        row_hash_strings(table)
    nested = pa.table({"n": pa.array([[1]], pa.list_(pa.duration("s")))})
    with pytest.raises(HashingError, match=r"column 'n\[\]'"):
        row_hash_strings(nested)


# --------------------------------------------------------------------------- hash_table


def test_hash_table_empty() -> None:
    empty = pa.table({"a": pa.array([], pa.int64())})
    assert row_hash_strings(empty).to_pylist() == []
    assert hash_table(empty) == hash_table(pa.table({"a": pa.array([], pa.int8())}))
    assert hash_table(empty) != hash_table(pa.table({"b": pa.array([], pa.int64())}))
    assert hash_table(empty) != hash_table(pa.table({"a": pa.array([], pa.string())}))
    assert hash_table(empty) != hash_table(pa.table({"a": [0]}))
    assert hash_table(pa.table({})) != hash_table(empty)


def test_hash_table_is_row_order_sensitive() -> None:
    table = pa.table({"a": [1, 2, 3]})
    assert hash_table(table) != hash_table(table.take([2, 1, 0]))
    assert hash_table(table) == hash_table(table.take([0, 1, 2]))
    assert hash_table(table) != hash_table(table.slice(0, 2))
    assert hash_table(table) != hash_table(pa.table({"a": [1, 2, 3, 3]}))


def test_hash_table_of_subset_columns() -> None:
    assert hash_table(BASE, ["i", "s"]) == hash_table(BASE.select(["s", "i"]))


# --------------------------------------------------------------------------- files


def file_table(paths: list[Path | None], nullable: bool = False) -> pa.Table:
    tp: Any = Path | None if nullable else Path
    return table_from_rows([{"p": p} for p in paths], {"p": tp})


def test_path_columns_hash_by_content(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.bin", tmp_path / "sub_b.bin", tmp_path / "c.bin"
    a.write_bytes(b"identical content")
    b.write_bytes(b"identical content")
    c.write_bytes(b"other content")
    hashes = rows(file_table([a, b, c]))
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]
    # The path string itself is not hashed: a plain string column differs.
    assert rows(pa.table({"p": [str(a)]}))[0] != hashes[0]
    assert logical_type(file_table([a]).schema.field("p").type) == "path"


def test_path_column_null_and_nullable(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    a.write_text("x")
    required = rows(file_table([a]))
    nullable = rows(file_table([a, None], nullable=True))
    assert nullable[0] == required[0]
    assert nullable[1] != nullable[0]


def test_editing_a_file_changes_its_hash(tmp_path: Path) -> None:
    f = tmp_path / "data.txt"
    f.write_text("version 1")
    first = rows(file_table([f]))[0]
    first_file = hash_file(f)
    f.write_text("version 2 is longer")
    assert rows(file_table([f]))[0] != first
    assert hash_file(f) != first_file
    # Same size, different bytes: the modification time moves on, so the cache misses.
    before = f.stat()
    f.write_text("version 3 is longer")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert hash_file(f).digest == hashlib.sha256(b"version 3 is longer").digest()


def test_hash_file_is_sha256_of_content(tmp_path: Path) -> None:
    f = tmp_path / "f"
    payload = os.urandom(3 * (1 << 20) + 17)  # spans several read chunks
    f.write_bytes(payload)
    assert hash_file(f) == ContentHash(HASH_SCHEME, hashlib.sha256(payload).digest())
    assert hash_file(str(f)) == hash_file(f)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert hash_file(empty).digest == hashlib.sha256(b"").digest()


def test_file_hash_cache_hits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_RECENT_NS", 0)  # (cache files written just now too)
    f = tmp_path / "cached.txt"
    f.write_text("cache me")
    clear_file_hash_cache()
    assert file_hash_cache_info() == {"hits": 0, "reads": 0, "size": 0}
    first = hash_file(f)
    assert file_hash_cache_info() == {"hits": 0, "reads": 1, "size": 1}
    assert hash_file(f) == first
    assert file_hash_cache_info() == {"hits": 1, "reads": 1, "size": 1}
    rows(file_table([f, f]))
    assert file_hash_cache_info() == {"hits": 3, "reads": 1, "size": 1}
    f.write_text("cache me again")
    hash_file(f)
    assert file_hash_cache_info()["reads"] == 2
    clear_file_hash_cache()
    assert file_hash_cache_info() == {"hits": 0, "reads": 0, "size": 0}


def test_a_same_size_rewrite_with_its_mtime_put_back_is_hashed_again(tmp_path: Path) -> None:
    """``cp -p``, ``rsync -t`` or ``os.utime`` put the mtime back, never the ctime: a cached
    digest is reused only while both, the size, inode and device are unchanged."""
    f = tmp_path / "data.txt"
    f.write_text("AAAA")
    clear_file_hash_cache()
    time.sleep(0.15)  # older than a clock tick: cached
    assert hash_file(f).digest == hashlib.sha256(b"AAAA").digest()
    assert file_hash_cache_info()["size"] == 1
    before = f.stat()
    f.write_text("GGGG")
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert hash_file(f).digest == hashlib.sha256(b"GGGG").digest()


def test_a_file_changed_just_now_is_not_cached(tmp_path: Path) -> None:
    """A second change within the same clock tick could leave every time as it was, so a
    file read within ``_RECENT_NS`` of its last change is read again next time."""
    f = tmp_path / "fresh.txt"
    f.write_text("new")
    clear_file_hash_cache()
    hash_file(f)
    hash_file(f)
    assert file_hash_cache_info() == {"hits": 0, "reads": 2, "size": 0}


def test_missing_file_and_directory_raise(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(HashingError, match=re.escape(f"file {str(missing)!r} does not exist")):
        hash_file(missing)
    with pytest.raises(HashingError, match=re.escape(f"{str(tmp_path)!r} is not a regular file")):
        hash_file(tmp_path)
    ok = tmp_path / "ok.txt"
    ok.write_text("ok")
    # In rows, a path naming no readable file is a value of its own (see unreadable_files):
    # apart from every file's content, from other such paths, and from a null.
    hashes = row_hash_strings(file_table([ok, missing, tmp_path, None], nullable=True)).to_pylist()
    assert len(set(hashes)) == 4
    assert row_hash_strings(file_table([missing], nullable=True)).to_pylist() == [hashes[1]]


# --------------------------------------------------------------------------- digests


def test_vectorized_and_hashlib_digests_agree() -> None:
    rng = np.random.default_rng(7)
    messages = [b"", b"abc", bytes(range(256)) * 5] + [
        rng.bytes(int(n)) for n in rng.integers(0, 200, size=400)
    ]
    array = pa.array(messages, pa.large_binary())
    expected = [hashlib.sha256(m).hexdigest() for m in messages]
    assert digest._hashlib_hex_digests(array) == expected
    assert digest._polars_hex_digests(array).to_pylist() == expected
    sliced = array.slice(5, 320)
    assert digest._hashlib_hex_digests(sliced) == expected[5:325]
    assert digest._polars_hex_digests(sliced).to_pylist() == expected[5:325]
    assert digest._polars_hash_ok()
    assert digest.hex_digests(array).to_pylist() == expected
    assert digest.hex_digests(array.slice(0, 3)).to_pylist() == expected[:3]


def test_large_table_row_hashes_match_small_tables() -> None:
    # Above the vectorization threshold the row hashes must equal the one-row hashes.
    n = digest._VECTOR_THRESHOLD + 50
    table = pa.table({"x": list(range(n)), "s": [f"v{i}" for i in range(n)]})
    hashes = rows(table)
    for i in (0, 1, n // 2, n - 1):
        assert hashes[i] == rows(table.slice(i, 1))[0]


def test_hashlib_fallback_gives_identical_row_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    n = digest._VECTOR_THRESHOLD + 10
    table = pa.table({"x": list(range(n)), "l": [[i, i] for i in range(n)]})
    vectorized = rows(table)
    monkeypatch.setattr(digest, "_polars_hash_ok", lambda: False)
    assert rows(table) == vectorized


# --------------------------------------------------------------------------- identity


class Leaf(IdentityMixin):
    def __init__(self, data: Any, shape: Any) -> None:
        self.data = data
        self.shape = shape
        self.calls = 0

    def identity_structure(self) -> Any:
        self.calls += 1
        return {"data": self.data, "shape": self.shape}

    def pipeline_identity_structure(self) -> Any:
        return {"shape": self.shape}


class OtherLeaf(Leaf):
    pass


class Node(IdentityMixin):
    def __init__(self, name: str, *inputs: Any) -> None:
        self.name = name
        self.inputs = inputs

    def identity_structure(self) -> Any:
        return (self.name, list(self.inputs))


class Plain:
    """Identifiable (content only), not a pipeline element."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def identity_structure(self) -> Any:
        return self.value

    def content_hash(self) -> ContentHash:
        return hash_value(("plain", self.value))


def test_identity_protocols() -> None:
    leaf = Leaf(1, "s")
    assert isinstance(leaf, Identifiable)
    assert isinstance(leaf, PipelineElement)
    assert isinstance(Plain(1), Identifiable)
    assert not isinstance(Plain(1), PipelineElement)
    assert not isinstance(object(), Identifiable)


def test_identity_mixin_hashes_and_cache() -> None:
    leaf = Leaf([1, 2], "shape")
    first = leaf.content_hash()
    assert leaf.content_hash() is first
    assert leaf.calls == 1
    assert leaf.content_hash() == Leaf([1, 2], "shape").content_hash()
    assert leaf.content_hash() != Leaf([1, 3], "shape").content_hash()
    assert leaf.pipeline_hash() == Leaf([1, 3], "shape").pipeline_hash()
    assert leaf.pipeline_hash() != Leaf([1, 2], "other").pipeline_hash()
    assert leaf.pipeline_hash() != leaf.content_hash()


def test_pipeline_structure_defaults_to_identity_structure() -> None:
    node = Node("n", 1, 2)
    assert node.pipeline_hash() == node.content_hash()


def test_identity_kind_separates_equal_structures() -> None:
    assert Leaf(1, "s").content_hash() != OtherLeaf(1, "s").content_hash()
    assert Leaf(1, "s").pipeline_hash() != OtherLeaf(1, "s").pipeline_hash()
    assert Leaf.identity_kind() == "Leaf"
    assert OtherLeaf.identity_kind() == "OtherLeaf"

    class Renamed(Leaf):
        @classmethod
        def identity_kind(cls) -> str:
            return "Leaf"

    assert Renamed(1, "s").content_hash() == Leaf(1, "s").content_hash()


def test_nested_elements_resolve_to_matching_hash_kind() -> None:
    a = Node("join", Leaf("data-1", "shape"), Plain(5))
    b = Node("join", Leaf("data-2", "shape"), Plain(5))
    c = Node("join", Leaf("data-1", "other"), Plain(5))
    d = Node("join", Leaf("data-1", "shape"), Plain(6))
    # Different data, same shape: same pipeline, different content.
    assert a.pipeline_hash() == b.pipeline_hash()
    assert a.content_hash() != b.content_hash()
    # Different shape: both differ.
    assert a.pipeline_hash() != c.pipeline_hash()
    assert a.content_hash() != c.content_hash()
    # A content-only element contributes its content hash to both.
    assert a.pipeline_hash() != d.pipeline_hash()
    assert a.content_hash() != d.content_hash()


def test_nested_elements_are_merkle_links() -> None:
    leaf = Leaf("data", "shape")
    # The parent embeds the child's hash, so it equals a parent built over the bare hashes.
    assert Node("n", leaf).content_hash() == Node("n", leaf.content_hash()).content_hash()
    assert Node("n", leaf).pipeline_hash() == Node("n", leaf.pipeline_hash()).pipeline_hash()
    assert hash_value(leaf) == hash_value(leaf.content_hash())
    assert hash_value([leaf]) == hash_value([leaf.content_hash()])


def test_identity_errors() -> None:
    class Missing(IdentityMixin):
        pass

    with pytest.raises(NotImplementedError, match="Missing must define identity_structure"):
        Missing().content_hash()

    class Liar(Plain):
        def content_hash(self) -> ContentHash:
            return "not a hash"  # type: ignore[return-value]

    with pytest.raises(HashingError, match="Liar returned 'not a hash' instead of a ContentHash"):
        Node("n", Liar(1)).content_hash()

    class Unhashable(IdentityMixin):
        def identity_structure(self) -> Any:
            return object()

    with pytest.raises(HashingError, match=r"builtins\.object"):
        Unhashable().content_hash()


def test_map_and_signed_zero_encodings_match_the_documented_bytes() -> None:
    # Built by hand from docs/identity.md: the schema digest, then per column a marker, a
    # count and the entries in stored order (a map), or a marker and a float64 (a float).
    from podline.hashing.arrow_encoding import _schema_digest

    table = pa.table(
        {
            "m": pa.array([[("b", 2), ("a", 1)]], pa.map_(pa.large_string(), pa.int64())),
            "z": pa.array([-0.0], pa.float64()),
        }
    )

    def text(s: str) -> bytes:
        return b"\x01" + struct.pack("<Q", len(s)) + s.encode()

    def integer(i: int) -> bytes:
        return b"\x01" + struct.pack("<q", i)

    message = (
        _schema_digest(table.schema)
        + b"\x01"
        + struct.pack("<Q", 2)
        + text("b")
        + integer(2)
        + text("a")
        + integer(1)
        + b"\x01"
        + struct.pack("<d", -0.0)
    )
    assert row_hash_strings(table).to_pylist() == [
        f"{HASH_SCHEME}:{hashlib.sha256(message).hexdigest()}"
    ]
