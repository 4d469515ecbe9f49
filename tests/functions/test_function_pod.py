"""FunctionPod: application, input checks, outputs, provenance, SKIP/None, errors, memo."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TypedDict

import pyarrow as pa
import pytest

import podline
from podline.columns import parse_token
from podline.errors import FunctionCallError, InputValidationError
from podline.executors import ThreadExecutor
from podline.functions import SKIP, FunctionPod, RowStatus, function_pod
from podline.schema import Schema

CALLS: list[tuple[int, int]] = []


@function_pod("total", version="v1", live_output=False)
def add(a: int, b: int) -> int:
    CALLS.append((a, b))
    return a + b


@function_pod(["quotient", "remainder"], live_output=False)
def divide(a: int, b: int) -> tuple[int, int]:
    if b == 0:
        return SKIP
    return divmod(a, b)


@function_pod("half", live_output=False)
def half(a: int) -> float | None:
    return None if a < 0 else a / 2


@function_pod("half", live_output=False)
def strict_half(a: int) -> float:
    return None if a < 0 else a / 2  # type: ignore[return-value]


@function_pod("scaled", live_output=False)
def scale(a: int, factor: int = 10) -> int:
    return a * factor


@function_pod("ratio", live_output=False)
def ratio(a: float, b: float) -> float:
    return a / b


def source(rows: list[dict[str, object]] | None = None) -> podline.Source:
    rows = rows or [{"id": i, "a": i, "b": i % 3} for i in range(6)]
    return podline.DictSource(rows, tag_columns=["id"], source_id="numbers")


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    CALLS.clear()


def test_decorated_object_is_still_the_function() -> None:
    assert add(2, 3) == 5
    assert add.__name__ == "add"
    assert isinstance(add, FunctionPod)


def test_pod_is_lazy_and_computes_once() -> None:
    result = add.pod(source())
    assert CALLS == []
    table = result.as_table()
    assert len(CALLS) == 6
    result.as_table()
    list(result)
    assert len(CALLS) == 6
    assert table.column("total").to_pylist() == [i + i % 3 for i in range(6)]


def test_output_schema_is_predicted_without_computing() -> None:
    result = divide.pod(source())
    tags, packets = result.output_schema()
    assert tags == Schema({"id": int})
    assert packets == Schema({"quotient": int, "remainder": int})
    tags_with_system, _ = result.output_schema(system_tags=True)
    assert len(tags_with_system) == 3
    assert not result.is_computed


def test_tags_and_system_tags_pass_through() -> None:
    src = source()
    out = add.pod(src).as_table(system_tags=True)
    expected = src.as_table(system_tags=True)
    system = [c for c in expected.column_names if c.startswith("__tag:")]
    assert out.select(["id", *system]).equals(expected.select(["id", *system]))


def test_source_info_names_the_function_and_the_call() -> None:
    out = add.pod(source()).as_table(source_info=True, content_hash=True)
    tokens = out.column("__source:total").to_pylist()
    parsed = [parse_token(t) for t in tokens]
    origin = f"add@{add.packet_function.content_hash().short(16)}"
    assert {p.kind for p in parsed} == {"call"}
    assert {p.origin for p in parsed} == {origin}
    assert {p.column for p in parsed} == {"total"}
    assert len({p.record for p in parsed}) == 6
    assert all(len(p.record) == 32 for p in parsed)


def test_several_output_keys_and_skip() -> None:
    result = divide.pod(source())
    rows = result.as_table().to_pylist()
    assert [r["id"] for r in rows] == [1, 2, 4, 5]
    assert rows[0] == {"id": 1, "quotient": 1, "remainder": 0}
    assert result.result is not None
    assert result.result.count(RowStatus.SKIPPED) == 2
    assert result.result.status[0] is RowStatus.SKIPPED


def test_none_is_a_value_where_allowed() -> None:
    rows = half.pod(source([{"id": 1, "a": -2}, {"id": 2, "a": 4}])).as_table().to_pylist()
    assert rows == [{"id": 1, "half": None}, {"id": 2, "half": 2.0}]


def test_none_where_not_allowed_fails_at_the_call() -> None:
    stream = strict_half.pod(source([{"id": 7, "a": -2}, {"id": 8, "a": 4}]))
    with pytest.raises(
        FunctionCallError, match=r"strict_half failed on the row with tag \{'id': 7\}"
    ):
        stream.as_table()
    kept = strict_half.execute(source([{"id": 7, "a": -2}, {"id": 8, "a": 4}]), on_error="continue")
    assert kept.stream.as_table().to_pylist() == [{"id": 8, "half": 2.0}]
    assert kept.status == [RowStatus.FAILED, RowStatus.COMPUTED]
    assert "does not allow None" in str(kept.errors[0])


def test_wrong_output_type_names_function_and_tag() -> None:
    @function_pod("y", live_output=False)
    def wrong(a: int) -> int:
        return "text" if a == 2 else a  # type: ignore[return-value]

    with pytest.raises(FunctionCallError, match=r"wrong failed on the row with tag \{'id': 2\}"):
        wrong.pod(source()).as_table()
    result = wrong.execute(source(), on_error="continue")
    assert result.count(RowStatus.FAILED) == 1
    assert result.stream.as_table().column("y").to_pylist() == [0, 1, 3, 4, 5]


def test_exceptions_become_function_call_errors() -> None:
    @function_pod("y", live_output=False)
    def boom(a: int) -> int:
        if a == 3:
            raise RuntimeError("kaput")
        return a

    with pytest.raises(
        FunctionCallError, match=r"boom failed on the row with tag \{'id': 3\}"
    ) as info:
        boom.pod(source()).as_table()
    assert isinstance(info.value.__cause__, RuntimeError)
    result = boom.execute(source(), on_error="continue")
    assert sorted(result.errors) == [3]
    assert result.captures[3].error_type == "RuntimeError"


def test_input_check_lists_every_problem_sorted() -> None:
    rows = [{"id": 1, "b": "x", "c": 1.0, "z": 2}]
    with pytest.raises(InputValidationError) as info:
        add.pod(source(rows))
    message = str(info.value)
    assert "missing column(s) 'a'" in message
    assert "'b' is str, parameter 'b' takes int" in message
    with pytest.raises(InputValidationError, match=r"extra column\(s\) 'c', 'z'"):
        ratio.pod(source([{"id": 1, "a": 1.0, "b": 2.0, "c": 1.0, "z": 2}]), strict=True)


class _Meta(TypedDict):
    site: str | None
    reps: list[int | None] | None


@function_pod("summary")
def _summarize(values: list[float | None], meta: _Meta) -> str:
    return f"{sum(v is not None for v in values)} {meta['site']} {meta['reps']}"


def test_nested_nullable_parameters_take_columns_without_nulls() -> None:
    """A source's column is nullable only where it holds a null, at any depth: a parameter
    ``list[float | None]`` (or a record with ``str | None`` fields) takes the column whether
    or not today's data hold one (user test: the pod could not be applied to clean data),
    and equal values are one call either way."""
    clean = [
        {"id": 1, "values": [1.0, 2.0], "meta": {"site": "a", "reps": [1]}},
        {"id": 2, "values": [3.0], "meta": {"site": "b", "reps": [2, 3]}},
    ]
    holey = [*clean, {"id": 3, "values": [None], "meta": {"site": None, "reps": [None]}}]
    store = podline.MemoryStore()
    outputs = []
    for rows in (clean, holey):
        stream = _arrow_source(rows)
        _summarize.pod(stream)  # the parameters' types are checked here
        result = _summarize.execute(stream, result_store=store)
        outputs.append(result.stream.as_table().column("summary").to_pylist())
    assert outputs == [["2 a [1]", "1 b [2, 3]"], ["2 a [1]", "1 b [2, 3]", "0 None [None]"]]
    assert result.status == [RowStatus.CACHED, RowStatus.CACHED, RowStatus.COMPUTED]
    # Still invariant otherwise, and a nullable column never fits a non-nullable element.
    with pytest.raises(InputValidationError, match="'values' is list"):
        _summarize.pod(_arrow_source([{"id": 1, "values": [1], "meta": clean[0]["meta"]}]))
    with pytest.raises(InputValidationError, match=r"'values' is list\[float \| None\]"):
        ratio_of_list.pod(source([{"id": 1, "values": [1.0, None]}]))


@dataclass
class _Spot:
    x: float
    y: float | None


@function_pod("seen", live_output=False)
def _seen(n: float | None, spot: _Spot | None, reps: list[int | None] | None) -> str:
    return f"{n!r} {spot!r} {reps!r}"


def test_nullable_columns_fit_nullable_parameters_that_take_their_values() -> None:
    """A nullable column fits a ``T | None`` parameter whose ``T`` takes its values: an
    ``int | None`` column a ``float | None`` parameter, a nullable record column a nullable
    dataclass of the same fields, a nullable ``list[int]`` a ``list[int | None] | None``.
    (Only equal types did: 'spot' is Record{x: float, y: float | None} | None, parameter
    'spot' takes _Spot{x: float, y: float | None} | None.)"""
    rows = [
        {"id": 1, "n": 2, "spot": {"x": 1.0, "y": None}, "reps": [1]},
        {"id": 2, "n": None, "spot": None, "reps": None},
    ]
    stream = _seen.pod(_arrow_source(rows))
    assert stream.as_table(sort_by_tags=True).column("seen").to_pylist() == [
        "2 _Spot(x=1.0, y=None) [1]",  # ints stay ints, records are instances
        "None None None",
    ]
    # A nullable column still never fits a parameter that takes no None.
    with pytest.raises(
        InputValidationError, match=r"'a' is int \| None, parameter 'a' takes float"
    ):
        ratio.pod(source([{"id": 1, "a": None, "b": 1.0}, {"id": 2, "a": 1, "b": 2.0}]))


def _arrow_source(rows: list[dict[str, object]]) -> podline.Source:
    return podline.ArrowTableSource(pa.Table.from_pylist(rows), ["id"])


@function_pod("first")
def ratio_of_list(values: list[float]) -> float:
    return values[0]


def test_extra_columns_are_ignored_and_do_not_change_the_memo_key() -> None:
    narrow = add.pod(source([{"id": 1, "a": 1, "b": 2}]))
    wide = add.pod(source([{"id": 1, "a": 1, "b": 2, "note": "ignored"}]))
    assert narrow.as_table().equals(wide.as_table().select(narrow.as_table().column_names))
    assert (
        narrow.as_table(source_info=True).column("__source:total").to_pylist()
        == wide.as_table(source_info=True).column("__source:total").to_pylist()
    )


def test_inputs_map_parameters_to_columns() -> None:
    rows = [{"id": 1, "x": 2, "y": 3}]
    result = add.pod(source(rows), inputs={"a": "x", "b": "y"})
    assert result.as_table().column("total").to_pylist() == [5]
    with pytest.raises(InputValidationError, match="unknown parameter"):
        add.pod(source(rows), inputs={"nope": "x"})
    # The mapping is part of the pod's identity; the executor is not.
    assert add.with_options(inputs={"a": "x", "b": "y"}).content_hash() != add.content_hash()
    assert add.with_options(executor=ThreadExecutor(2)).content_hash() == add.content_hash()


@function_pod("note", live_output=False)
def describe(id: int, a: int) -> str:
    CALLS.append((id, a))
    return f"{id}:{a}"


@function_pod("note", live_output=False)
def describe_optional(a: int, id: int = -1) -> str:
    return f"{id}:{a}"


def test_a_parameter_named_like_a_tag_is_an_error_that_says_how_to_pass_tags() -> None:
    for pod in (describe, describe_optional):  # a default does not hide the mistake
        with pytest.raises(InputValidationError) as info:
            pod.pod(source([{"id": 1, "a": 2}]))
        message = str(info.value)
        assert "parameter(s) 'id' name tag column(s)" in message
        assert "inputs={'id': 'id'}" in message
        assert "missing column" not in message


def test_an_explicit_mapping_passes_tag_values_into_the_memo_key() -> None:
    rows = [{"id": 1, "a": 5}, {"id": 2, "a": 5}]  # equal packets, different tags
    result = describe.pod(source(rows), inputs={"id": "id"})
    assert result.as_table().column("note").to_pylist() == ["1:5", "2:5"]
    assert sorted(CALLS) == [(1, 5), (2, 5)]  # not one call shared by equal packets
    with pytest.raises(InputValidationError, match="'id' is str, parameter 'id' takes int"):
        describe.pod(
            podline.DictSource([{"id": "x", "a": 1}], tag_columns="id"), inputs={"id": "id"}
        )


def test_optional_parameters_use_their_defaults() -> None:
    assert scale.pod(source([{"id": 1, "a": 2}])).as_table().column("scaled").to_pylist() == [20]
    with_factor = scale.pod(source([{"id": 1, "a": 2, "factor": 3}]))
    assert with_factor.as_table().column("scaled").to_pylist() == [6]


def test_int_columns_feed_float_parameters() -> None:
    result = ratio.pod(source([{"id": 1, "a": 3, "b": 2}]))
    assert result.as_table().column("ratio").to_pylist() == [1.5]


def test_duplicate_argument_packets_are_computed_once() -> None:
    rows = [{"id": i, "a": 1, "b": 1} for i in range(5)]
    result = add.pod(source(rows))
    assert result.as_table().column("total").to_pylist() == [2] * 5
    assert CALLS == [(1, 1)]
    assert result.result is not None
    assert result.result.status == [RowStatus.COMPUTED] + [RowStatus.CACHED] * 4


def test_empty_input_gives_typed_empty_output() -> None:
    empty = podline.DictSource([], tag_columns=["id"], schema={"id": int, "a": int, "b": int})
    table = add.pod(empty).as_table()
    assert table.num_rows == 0
    assert table.schema.field("total").type == pa.int64()


class Stats(TypedDict):
    low: float
    high: float


@dataclass
class Point:
    x: float
    y: float


@function_pod(["stats", "counts", "centre"], live_output=False)
def summarize(
    values: list[float], labels: dict[str, int], points: list[Point]
) -> tuple[Stats, dict[str, int], Point]:
    centre = Point(sum(p.x for p in points) / len(points), sum(p.y for p in points) / len(points))
    return {"low": min(values), "high": max(values)}, dict(sorted(labels.items())), centre


def test_structured_values_in_and_out() -> None:
    rows = [
        {
            "id": 1,
            "values": [1.0, 3.0],
            "labels": {"b": 2, "a": 1},
            "points": [Point(0.0, 0.0), Point(2.0, 4.0)],
        }
    ]
    result = summarize.pod(podline.DictSource(rows, tag_columns=["id"]))
    ((_, packet),) = list(result)
    assert packet["stats"] == {"low": 1.0, "high": 3.0}
    assert packet["counts"] == {"a": 1, "b": 2}
    assert packet["centre"] == Point(1.0, 2.0)


def test_async_functions() -> None:
    @function_pod("doubled", live_output=False)
    async def double(a: int) -> int:
        await asyncio.sleep(0)
        return 2 * a

    assert double.packet_function.is_async
    assert double.pod(source()).as_table().column("doubled").to_pylist() == [
        2 * i for i in range(6)
    ]
    threaded = double.with_options(executor=ThreadExecutor(4)).pod(source())
    assert threaded.as_table().column("doubled").to_pylist() == [2 * i for i in range(6)]


def test_call_packet() -> None:
    out, status = add.call_packet(podline.Packet({"a": 1, "b": 2}))
    assert status is RowStatus.COMPUTED
    assert isinstance(out, podline.Packet)
    assert out["total"] == 3
    skipped, status = divide.call_packet(podline.Packet({"a": 1, "b": 0}))
    assert skipped is SKIP
    assert status is RowStatus.SKIPPED


def test_identity_of_applications() -> None:
    src = source()
    assert add.pod(src).content_hash() == add.pod(src).content_hash()
    assert (
        add.pod(src).content_hash() != add.pod(source([{"id": 1, "a": 1, "b": 1}])).content_hash()
    )
    # Same schema, different data: same pipeline hash.
    assert (
        add.pod(src).pipeline_hash() == add.pod(source([{"id": 1, "a": 1, "b": 1}])).pipeline_hash()
    )
    assert add.pod(src).content_hash() != divide.pod(src).content_hash()


def test_several_streams_are_joined_first() -> None:
    @function_pod("combined", live_output=False)
    def combine(sums: int, products: int) -> int:
        return sums + products

    sums = podline.DictSource([{"id": i, "sums": i + i} for i in range(3)], tag_columns=["id"])
    products = podline.DictSource(
        [{"id": i, "products": i * i} for i in range(3)], tag_columns=["id"]
    )
    result = combine.pod(sums, products)
    assert result.as_table().column("combined").to_pylist() == [0, 3, 8]
    (joined,) = result.upstreams
    assert isinstance(joined, podline.streams.ProducedStream)
    assert type(joined.producer).__name__ == "Join"
    # The join is commutative, so the argument order does not change the identity.
    assert combine.pod(products, sums).content_hash() == result.content_hash()


def test_keyword_only_parameters_are_passed_by_name() -> None:
    @function_pod("y", live_output=False)
    def shifted(a: int, *, shift: int = 100) -> int:
        return a + shift

    assert shifted.packet_function.positional is None
    assert shifted.pod(source([{"id": 1, "a": 1}])).as_table().column("y").to_pylist() == [101]
    with_shift = shifted.pod(source([{"id": 1, "a": 1, "shift": 5}]))
    assert with_shift.as_table().column("y").to_pylist() == [6]


def test_each_computed_call_hands_its_capture_to_a_packet_logger() -> None:
    @function_pod("y", live_output=False)
    def chatty(a: int) -> int:
        print(f"working on {a}")
        return a

    received: list[tuple[dict[str, object], dict[str, object], str]] = []

    class Logger:
        def __init__(self, tag: podline.Tag, packet: podline.Packet) -> None:
            self.tag, self.packet = tag, packet

        def record(self, capture: object) -> None:
            stdout = capture.stdout  # type: ignore[attr-defined]
            received.append((self.tag.as_dict(), self.packet.as_dict(), stdout))

    rows = [{"id": 1, "a": 5}, {"id": 2, "a": 6}, {"id": 3, "a": 5}]
    chatty.execute(source(rows), logger_factory=Logger)
    # One call per distinct argument packet; the tag is that of the row that ran it.
    assert received == [
        ({"id": 1}, {"a": 5}, "working on 5\n"),
        ({"id": 2}, {"a": 6}, "working on 6\n"),
    ]
