"""MergeJoin: shared packet columns become sorted lists, with their source info alongside."""

from __future__ import annotations

import pytest

from podline import Schema
from podline.columns import parse_system_tag
from podline.errors import OperatorError
from podline.operators import MergeJoin

from .helpers import assert_prediction_matches, full, source, system_tag_names


@pytest.fixture
def a():
    return source([{"id": 1, "x": 0.5, "u": 1}, {"id": 2, "x": 9.5, "u": 2}], label="A")


@pytest.fixture
def b():
    return source([{"id": 1, "x": 2.5, "v": "p"}, {"id": 2, "x": 1.5, "v": "q"}], label="B")


def test_shared_packets_become_sorted_lists(a, b) -> None:
    merged = MergeJoin()(a, b)
    assert merged.output_schema() == (
        Schema({"id": int}),
        Schema({"u": int, "v": str, "x": list[float]}),
    )
    table = full(merged)
    assert table.select(["id", "u", "v", "x"]).to_pylist() == [
        {"id": 1, "u": 1, "v": "p", "x": [0.5, 2.5]},
        {"id": 2, "u": 2, "v": "q", "x": [1.5, 9.5]},
    ]
    # Tokens sorted together with the values; scalar columns keep scalar tokens.
    assert table.column("__source:x").to_pylist() == [
        [f"source::{a.source_id}::#0::x", f"source::{b.source_id}::#0::x"],
        [f"source::{b.source_id}::#1::x", f"source::{a.source_id}::#1::x"],
    ]
    assert table.column("__source:u").to_pylist() == [
        f"source::{a.source_id}::#0::u",
        f"source::{a.source_id}::#1::u",
    ]
    assert_prediction_matches(merged)


def test_commutative_identity_and_rows(a, b) -> None:
    ab, ba = MergeJoin()(a, b), MergeJoin()(b, a)
    assert ab.content_hash() == ba.content_hash()
    assert ab.pipeline_hash() == ba.pipeline_hash()
    assert ab.as_table(all_info=True).equals(ba.as_table(all_info=True))


def test_equal_pipeline_hashes_stay_order_independent() -> None:
    first = source([{"id": 1, "x": 1}, {"id": 2, "x": 5}], label="one")
    second = source([{"id": 2, "x": 3}, {"id": 1, "x": 7}], label="two")
    assert first.pipeline_hash() == second.pipeline_hash()
    forward, backward = MergeJoin()(first, second), MergeJoin()(second, first)
    assert forward.as_table(all_info=True).equals(backward.as_table(all_info=True))
    names = system_tag_names(forward)
    assert sorted(parse_system_tag(n).hops[-1][1] for n in names) == [0, 0, 1, 1]
    table = full(forward)
    # Per row, slot 0 holds the smaller (source id, record id) pair; each pair moves whole.
    slot = {
        (parse_system_tag(n).kind, parse_system_tag(n).hops[-1][1]): table.column(n).to_pylist()
        for n in names
    }
    for row in range(table.num_rows):
        pairs = [(slot["source_id", p][row], slot["record_id", p][row]) for p in (0, 1)]
        assert pairs == sorted(pairs)
        assert {p[0] for p in pairs} == {first.source_id, second.source_id}
    assert table.column("x").to_pylist() == [[1, 7], [3, 5]]


def test_ties_are_broken_by_source_info() -> None:
    first = source([{"id": 1, "x": 4}], label="one", source_id="s2")
    second = source([{"id": 1, "x": 4}], label="two", source_id="s1")
    table = full(MergeJoin()(first, second))
    assert table.column("__source:x").to_pylist() == [["source::s1::#0::x", "source::s2::#0::x"]]


def test_nullable_side_gives_nullable_items_and_nulls_sort_last() -> None:
    first = source([{"id": 1, "x": None}, {"id": 2, "x": 3}], label="one")
    second = source([{"id": 1, "x": 2}, {"id": 2, "x": 1}], label="two")
    merged = MergeJoin()(second, first)
    assert merged.output_schema()[1] == Schema({"x": list[int | None]})
    assert merged.as_table().column("x").to_pylist() == [[2, None], [1, 3]]
    assert_prediction_matches(merged)


def test_type_mismatch_is_named(a) -> None:
    other = source([{"id": 1, "x": "text", "w": 1}], label="B")
    with pytest.raises(OperatorError) as info:
        MergeJoin()(a, other)
    assert str(info.value) == (
        "MergeJoin: packet column(s) with conflicting types: "
        "'x' (float in input 0 ('A'); str in input 1 ('B'))"
    )


def test_arity(a, b) -> None:
    with pytest.raises(OperatorError, match=r"MergeJoin: takes 2 input stream\(s\), got 3"):
        MergeJoin()(a, b, a)


def test_empty_input_gives_typed_empty_output(a) -> None:
    empty = source([], schema={"id": int, "x": float}, label="E")
    merged = MergeJoin()(a, empty)
    assert len(merged) == 0
    assert merged.output_schema()[1] == Schema({"u": int, "x": list[float]})
    assert_prediction_matches(merged)
    assert full(merged).schema.field("__source:x").type.value_type is not None
