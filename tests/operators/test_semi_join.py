"""SemiJoin: left rows whose tags the right has; exactly the left schema; not commutative."""

from __future__ import annotations

import pytest

from podline.errors import OperatorError
from podline.operators import SemiJoin

from .helpers import assert_prediction_matches, full, source


@pytest.fixture
def left():
    rows = [{"id": 3, "x": 0.3}, {"id": 1, "x": 0.1}, {"id": 2, "x": 0.2}, {"id": None, "x": 0.0}]
    return source(rows, label="L")


@pytest.fixture
def right():
    return source([{"id": 1, "y": "a"}, {"id": 1, "y": "b"}, {"id": 3, "y": "c"}], label="R")


def test_keeps_matching_left_rows_in_left_order(left, right) -> None:
    kept = SemiJoin()(left, right)
    # Each left row at most once, whatever the number of matches; nulls never match.
    assert kept.as_table().to_pylist() == [{"id": 3, "x": 0.3}, {"id": 1, "x": 0.1}]
    table, original = full(kept), full(left)
    assert table.schema == original.schema  # system tags and source info untouched
    assert table.to_pylist() == [original.to_pylist()[i] for i in (0, 1)]
    assert_prediction_matches(kept)


def test_output_schema_is_exactly_the_left(left, right) -> None:
    kept = SemiJoin()(left, right)
    for flag in (False, True):
        assert kept.output_schema(system_tags=flag) == left.output_schema(system_tags=flag)


def test_not_commutative(left, right) -> None:
    assert SemiJoin()(left, right).content_hash() != SemiJoin()(right, left).content_hash()
    assert SemiJoin()(right, left).as_table().column("id").to_pylist() == [1, 1, 3]


def test_packets_with_the_same_name_do_not_matter(left) -> None:
    other = source([{"id": 2, "x": 99.0}], label="O")
    assert SemiJoin()(left, other).as_table().to_pylist() == [{"id": 2, "x": 0.2}]


def test_no_shared_tags_keeps_all_or_nothing(left) -> None:
    some = source([{"k": 1, "z": 1}], ["k"], label="K")
    none = source([], ["k"], schema={"k": int, "z": int}, label="E")
    assert len(SemiJoin()(left, some)) == len(left)
    assert len(SemiJoin()(left, none)) == 0


def test_empty_inputs_give_typed_empty_output(left, right) -> None:
    empty_left = source([], schema={"id": int, "x": float}, label="E")
    empty_right = source([], schema={"id": int, "y": str}, label="F")
    for stream in (SemiJoin()(empty_left, right), SemiJoin()(left, empty_right)):
        assert len(stream) == 0
        assert_prediction_matches(stream)
    assert full(SemiJoin()(left, empty_right)).schema == full(left).schema


def test_tag_type_conflict_is_named(left) -> None:
    other = source([{"id": "1", "y": 1}], label="O")
    with pytest.raises(OperatorError) as info:
        SemiJoin()(left, other)
    assert str(info.value) == (
        "SemiJoin: tag column(s) with conflicting types: "
        "'id' (int | None in input 0 ('L'); str in input 1 ('O'))"
    )
