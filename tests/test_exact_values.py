"""Lossless conversion: a value enters a typed column exactly, or it is rejected.

The rules are in ``podline.exact`` and docs/types.md. The property tests draw arbitrary
Python values for every supported type and check that each one either reads back exactly
(through a store and through a function pod's memo) or is refused with an error naming it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import podline
from podline import DictSource, function_pod
from podline.conversion import column_to_python, table_from_columns
from podline.errors import InexactValueError, InputValidationError, SourceError
from podline.functions import FunctionPod, PacketFunction, RowStatus
from podline.schema import normalize_type, strip_optional
from podline.stores import DeltaStore, MemoryStore

UTC = dt.UTC
PLUS_TWO = dt.timezone(dt.timedelta(hours=2))


class Point(TypedDict):
    x: int
    y: float


@dataclasses.dataclass
class Span:
    start: int
    stop: int | None


def convert(value: Any, tp: Any) -> Any:
    """``value`` through a one-row column of type ``tp`` and back."""
    table = table_from_columns({"v": [value]}, {"v": tp})
    return column_to_python(table.column("v"), tp)[0]


# --------------------------------------------------------------------------- the edge rules

ACCEPTED = [
    (int, 3),
    (int, -(2**63)),
    (int, 2**63 - 1),
    (int, np.int64(7)),
    (int, np.uint32(7)),
    (float, 0.5),
    (float, -0.0),
    (float, math.inf),
    (float, 3),  # an int float64 holds exactly
    (float, 2**53),
    (float, -(2**53)),
    (float, np.float32(0.25)),
    (bool, True),
    (bool, np.bool_(False)),
    (str, "ü"),
    (bytes, b"\x00"),
    (bytes, bytearray(b"ab")),
    (dt.datetime, dt.datetime(2020, 1, 2, 3, 4, 5, 6)),
    (dt.datetime, pd.Timestamp("2020-01-02 03:04:05.000006")),
    (dt.date, dt.date(2020, 1, 2)),
    (list[int], [1, 2]),
    (list[int], (1, 2)),
    (list[float], np.array([0.5, 1.5])),
    (list[float], [1, 2.5]),
    (dict[str, int], {"b": 2, "a": 1}),
    (tuple[int, str], (1, "a")),
    (tuple[float, float], [0.5, 1]),
    (Point, {"x": 1, "y": 2.5}),
    (Span, Span(1, None)),
    (int | None, None),
    (list[int | None], [1, None]),
]


@pytest.mark.parametrize(("tp", "value"), ACCEPTED, ids=lambda v: repr(v)[:30])
def test_values_that_fit_read_back_equal(tp: Any, value: Any) -> None:
    back = convert(value, tp)
    expected = value.tolist() if isinstance(value, np.ndarray) else value
    if isinstance(expected, tuple) and normalize_type(strip_optional(tp)) is not tuple:
        expected = list(expected) if isinstance(back, list) else expected
    assert back == expected or (isinstance(back, tuple) and list(back) == list(expected))
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value)


REJECTED = [
    # (type, value, words the error must contain)
    (int, 1.5, "1.5 (float) is a float, not an int"),
    (int, 2.0, "2.0 (float) is a float, not an int"),  # integral floats too: see podline.exact
    (int, np.float64(2.0), "is a float, not an int"),
    (int, True, "True (bool) is a bool, not an int"),
    (int, 2**63, "is beyond int64"),
    (int, -(2**63) - 1, "is beyond int64"),
    (int, np.uint64(2**64 - 1), "is beyond int64"),
    (int, "3", "'3' (str) is not an int"),
    (float, 2**53 + 1, "beyond 2**53"),
    (float, 2**60, "beyond 2**53"),
    (float, True, "is a bool, not a float"),
    (float, "0.5", "is not a float"),
    (bool, 1, "1 (int) is not a bool"),
    (str, b"a", "is not a str"),
    (bytes, "a", "is not bytes"),
    (dt.datetime, dt.datetime(2020, 1, 1, tzinfo=UTC), "has a time zone"),
    (dt.datetime, dt.datetime(2020, 1, 1, tzinfo=PLUS_TWO), "has a time zone"),
    (dt.datetime, pd.Timestamp("2020-01-01 00:00:00.000000001"), "has nanoseconds"),
    (dt.datetime, dt.date(2020, 1, 1), "is not a datetime"),
    (dt.date, dt.datetime(2020, 1, 1, 5), "is a datetime, and a date column would drop its time"),
    (Path, "a.txt", "is not a pathlib.Path"),
    (list[int], [1, 2.5], "item 1: 2.5 (float) is a float, not an int"),
    (list[int], np.array([1.5]), "item 0: 1.5 (float) is a float"),
    (list[int], "12", "is not a list, tuple or 1-d array"),
    (list[list[int]], [[1], [True]], "item 1: item 0: True (bool) is a bool"),
    (
        list[dt.datetime],
        [dt.datetime(2020, 1, 1, tzinfo=UTC)],
        "tzinfo=datetime.timezone.utc) (datetime) has a time zone",
    ),
    (dict[str, int], {"a": 1.5}, "value at key 'a': 1.5 (float) is a float"),
    (dict[str, int], {1: 1}, "key 1: 1 (int) is not a str"),
    (dict[str, float], {"a": 2**60}, "beyond 2**53"),
    (tuple[int, str], (1, "a", 2), "is not a sequence of 2 items"),
    (tuple[int, int], [1, 2, 3], "has 3 items where the type has 2"),
    (tuple[int, str], (1.5, "a"), "item 0: 1.5 (float) is a float"),
    (Point, {"x": 1, "y": 2.0, "z": 3}, "has key(s) 'z' beyond the record"),
    (Point, {"x": 1.5, "y": 2.0}, "field 'x': 1.5 (float) is a float"),
    (Span, Span(1.5, None), "field 'start': 1.5 (float)"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("tp", "value", "words"), REJECTED, ids=lambda v: repr(v)[:30])
def test_values_that_do_not_fit_are_rejected_naming_column_row_and_value(
    tp: Any, value: Any, words: str
) -> None:
    with pytest.raises(InexactValueError) as info:
        table_from_columns({"col": [None, value]}, {"col": tp | None})
    assert words in info.value.reason
    assert info.value.column == "col"
    assert info.value.row == 1
    assert info.value.value is value
    assert str(info.value).startswith("column 'col', row 1: ")


def test_a_pod_returning_a_float_for_an_int_fails_that_row_naming_function_tag_and_value() -> None:
    @function_pod("half", version="v1")
    def half(x: int) -> int:
        return x / 2  # type: ignore[return-value]

    source = DictSource([{"k": 1, "x": 2}, {"k": 2, "x": 3}], tag_columns=["k"])
    result = half.execute(source, on_error="continue")
    assert result.status == [RowStatus.FAILED, RowStatus.FAILED]  # 1.0 is a float too
    message = str(result.errors[1])
    assert "half failed on the row with tag {'k': 2}" in message
    assert "output 'half' of type int: 1.5 (float) is a float, not an int" in message
    with pytest.raises(podline.errors.FunctionCallError, match=r"1\.0 \(float\)"):
        half.pod(source).as_table()


def test_a_source_with_a_schema_refuses_a_float_for_an_int_naming_source_column_and_tag() -> None:
    with pytest.raises(SourceError) as info:
        DictSource(
            [{"k": 1, "x": 2}, {"k": 2, "x": 2.7}],
            tag_columns=["k"],
            schema={"k": int, "x": int},
            label="readings",
        )
    message = str(info.value)
    assert message.startswith("readings: column 'x', row 1: 2.7 (float) is a float, not an int")
    assert message.endswith("in the row with tag {'k': 2}")


def test_list_source_names_the_rows_tag() -> None:
    with pytest.raises(SourceError, match=r"row 1: 1.5 .* in the row with tag \{'index': 1\}"):
        podline.ListSource("v", [1, 1.5], value_type=int)


def test_a_packet_refuses_inexact_values() -> None:
    with pytest.raises(InputValidationError, match="is a float, not an int"):
        podline.Packet({"a": 1.5}, podline.Schema({"a": int})).as_table()


def test_store_writes_refuse_values_their_stored_column_cannot_hold(tmp_path: Path) -> None:
    for store in (MemoryStore(), DeltaStore(tmp_path / "s", flush_seconds=None)):
        ids = pa.array(["a"], pa.large_string())
        store.write(("t",), pa.table({"__record_id": ids, "x": pa.array([1], pa.int64())}))
        store.flush()
        for wrong in (pa.array([1.5]), pa.array([2**63], pa.uint64())):
            with pytest.raises(podline.errors.StoreError, match="column 'x' at 't'"):
                store.write(("t",), pa.table({"__record_id": ["b"], "x": wrong}))
        store.write(("t",), pa.table({"__record_id": ["c"], "x": pa.array([3])}))
        store.flush()
        assert sorted(store.scan(("t",)).column("x").to_pylist()) == [1, 3]
        store.close()


# --------------------------------------------------------------------------- property tests


def scalars() -> st.SearchStrategy[Any]:
    """Python values of every scalar kind a function might return, edge cases included."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([2**53, 2**53 + 1, -(2**63), 2**63 - 1, 2**63]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, -0.0, 2.0, 1.5]),
        st.builds(np.int64, st.integers(-(2**63), 2**63 - 1)),
        st.builds(np.float32, st.floats(width=32, allow_nan=False)),
        st.text(max_size=5),
        st.binary(max_size=5),
        st.dates(),
        st.datetimes(),
        st.datetimes(timezones=st.sampled_from([UTC, PLUS_TWO])),
    )


def values() -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.tuples(inner, inner),
            st.dictionaries(st.text(max_size=3), inner, max_size=3),
        ),
        max_leaves=6,
    )


TYPES = [
    int,
    float,
    bool,
    str,
    bytes,
    dt.datetime,
    dt.date,
    list[int],
    list[float],
    list[list[int]],
    list[dt.datetime],
    dict[str, int],
    dict[str, float],
    tuple[int, str],
    tuple[float, float],
    Point,
]


def fitting(tp: Any) -> st.SearchStrategy[Any]:
    """Values of type ``tp`` (and of its edges), so that most drawn values fit."""
    tp = normalize_type(tp)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        int: st.integers(-(2**63), 2**63 - 1),
        float: st.one_of(st.floats(), st.integers(-(2**53), 2**53)),
        bool: st.booleans(),
        str: st.text(max_size=5),
        bytes: st.binary(max_size=5),
        dt.datetime: st.datetimes(),
        dt.date: st.dates(),
    }
    if tp in simple:
        return simple[tp]
    if tp is Point:
        return st.fixed_dictionaries({"x": fitting(int), "y": fitting(float)})
    origin, args = tp.__origin__, tp.__args__
    if origin is list:
        return st.lists(fitting(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(fitting(args[0]), fitting(args[1]), max_size=3)
    return st.tuples(*(fitting(a) for a in args))


def draw_case(data: st.DataObject) -> tuple[Any, Any]:
    tp = data.draw(st.sampled_from(TYPES), label="type")
    value = data.draw(st.one_of(fitting(tp), values()), label="value")
    return tp, value


def same(given: Any, back: Any, tp: Any) -> bool:
    """Whether ``back`` is ``given`` exactly, as the declared type ``tp`` reads it back."""
    tp = normalize_type(strip_optional(tp))
    if given is None or back is None:
        return given is None and back is None
    if tp is float:
        if math.isnan(given):
            return type(back) is float and math.isnan(back)
        return type(back) is float and back == given and str(back)[0] == str(float(given))[0]
    if tp in (int, bool, str, bytes, dt.datetime, dt.date):
        expected = {int: int, bool: bool, str: str, bytes: bytes}.get(tp)
        return back == given and (expected is None or type(back) is expected)
    if tp is Point:
        return same(given["x"], back["x"], int) and same(given["y"], back["y"], float)
    origin = getattr(tp, "__origin__", None)
    args = getattr(tp, "__args__", ())
    if origin is dict:
        return list(back) == list(given) and all(same(given[k], back[k], args[1]) for k in given)
    items = list(given)
    if len(items) != len(back):
        return False
    subtypes = args if origin is tuple and len(set(args)) > 1 else (args[0],) * len(items)
    return all(same(a, b, t) for a, b, t in zip(items, back, subtypes, strict=True))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_reads_back_exactly_from_a_store_or_is_rejected(data: st.DataObject) -> None:
    tp, value = draw_case(data)
    try:
        table = table_from_columns({"v": [value]}, {"v": tp | None})
    except InputValidationError:
        event("rejected")
        return  # rejected, with an error naming it (see the rule tests)
    event("stored")
    store = MemoryStore()
    ids = pa.array(["r"], pa.large_string())
    store.write(("t",), table.append_column("__record_id", ids))
    back = column_to_python(store.scan(("t",)).column("v"), tp)[0]
    assert same(value, back, tp), (value, back)


_VALUES: dict[int, Any] = {}


def _produce(key: int) -> Any:
    return _VALUES[key]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_pod_output_reads_back_exactly_from_its_memo_or_fails_its_row(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tp, value = draw_case(data)
    # The same function, declared with each type: a real pod, memoized in a Delta store, read
    # back by a second pod object on a fresh store object (so from disk, not from memory).
    key = data.draw(st.integers(0, 10**9))
    _VALUES[key] = value
    root = tmp_path_factory.mktemp("memo")

    def make() -> FunctionPod:
        fn = PacketFunction(_produce, output_keys="out", output_schema={"out": tp | None})
        return FunctionPod(fn, result_store=DeltaStore(root, flush_seconds=None))

    source = DictSource([{"key": key}], tag_columns=[])
    first = make()
    result = first.execute(source, on_error="continue")
    first.result_store.flush()  # type: ignore[union-attr]
    if result.status == [RowStatus.FAILED]:
        event("rejected")
        assert isinstance(result.errors[0].__cause__, podline.errors.OutputValidationError)
        return
    event("stored")
    again = make().execute(source)
    assert again.status == [RowStatus.CACHED]
    back = column_to_python(again.stream.as_table().column("out"), tp)[0]
    assert same(value, back, tp), (value, back)


def test_a_null_fixed_size_tuple_round_trips_through_a_memo(tmp_path: Path) -> None:
    # Arrow refuses to cast a null fixed-size-list slot to its own type (its child holds
    # nulls): found by the property test above.
    def make() -> FunctionPod:
        fn = PacketFunction(
            _produce, output_keys="out", output_schema={"out": tuple[float, float] | None}
        )
        return FunctionPod(fn, result_store=DeltaStore(tmp_path, flush_seconds=None))

    _VALUES[-1] = None
    _VALUES[-2] = (0.5, -0.0)
    source = DictSource([{"row": 0, "key": -1}, {"row": 1, "key": -2}], tag_columns=["row"])
    first = make()
    assert first.execute(source).status == [RowStatus.COMPUTED, RowStatus.COMPUTED]
    first.result_store.flush()  # type: ignore[union-attr]
    again = make().execute(source)
    assert again.status == [RowStatus.CACHED, RowStatus.CACHED]
    assert again.stream.as_table().column("out").to_pylist() == [None, [0.5, -0.0]]
