"""Join: matching, Cartesian products, errors, system-tag renaming and commutativity."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import podline
from podline import ArrowTableSource, InputValidationError, Schema, TableStream
from podline.columns import extend_lineage, parse_system_tag, system_tag_columns
from podline.errors import OperatorError
from podline.operators import Join

from .helpers import assert_prediction_matches, full, source, system_tag_names

A_ROWS = [{"id": 1, "x": 0.5}, {"id": 2, "x": 1.5}, {"id": 3, "x": 2.5}]
B_ROWS = [{"id": 2, "y": "b"}, {"id": 1, "y": "a"}, {"id": 4, "y": "d"}]


@pytest.fixture
def a() -> ArrowTableSource:
    return source(A_ROWS, label="A")


@pytest.fixture
def b() -> ArrowTableSource:
    return source(B_ROWS, label="B")


def test_inner_join_on_shared_tags(a, b) -> None:
    joined = Join()(a, b)
    assert joined.keys() == (("id",), ("x", "y"))
    assert not joined.is_computed  # applying validated, but computed nothing
    rows = [{"id": 1, "x": 0.5, "y": "a"}, {"id": 2, "x": 1.5, "y": "b"}]
    # Rows follow the input that comes first in canonical (pipeline hash) order.
    a_first = str(a.pipeline_hash()) < str(b.pipeline_hash())
    assert joined.as_table().to_pylist() == (rows if a_first else rows[::-1])


def test_many_to_many_matches_every_pair() -> None:
    left = source([{"k": 1, "x": i} for i in range(3)], ["k"], label="L")
    right = source([{"k": 1, "y": i} for i in range(2)] + [{"k": 2, "y": 9}], ["k"], label="R")
    rows = Join()(left, right).as_table().to_pylist()
    assert sorted((r["x"], r["y"]) for r in rows) == [(x, y) for x in range(3) for y in range(2)]


def test_cartesian_product_without_shared_tags() -> None:
    left = source([{"i": 1, "x": 1}, {"i": 2, "x": 2}], ["i"], label="L")
    right = source([{"j": 10, "y": 1}, {"j": 20, "y": 2}, {"j": 30, "y": 3}], ["j"], label="R")
    joined = Join()(left, right)
    assert joined.keys() == (("i", "j"), ("x", "y"))
    pairs = [(r["i"], r["j"]) for r in joined.as_table().to_pylist()]
    # Rows follow the canonical first input (by pipeline hash), whichever that is.
    by_left = list(itertools.product([1, 2], [10, 20, 30]))
    by_right = [(i, j) for j, i in itertools.product([10, 20, 30], [1, 2])]
    assert pairs in (by_left, by_right)
    swapped = Join()(right, left).as_table().to_pylist()
    assert [(r["i"], r["j"]) for r in swapped] == pairs


def test_nary_join_matches_on_each_shared_subset() -> None:
    ab = source([{"a": 1, "b": 1, "p": 1}, {"a": 1, "b": 2, "p": 2}], ["a", "b"], label="AB")
    bc = source([{"b": 1, "c": 7, "q": 1}, {"b": 2, "c": 8, "q": 2}], ["b", "c"], label="BC")
    c = source([{"c": 8, "r": 3}], ["c"], label="C")
    joined = Join()(ab, bc, c)
    assert joined.as_table().to_pylist() == [{"a": 1, "b": 2, "c": 8, "p": 2, "q": 2, "r": 3}]


def test_null_tags_never_match() -> None:
    left = source([{"k": None, "x": 1}, {"k": 1, "x": 2}], ["k"], label="L")
    right = source([{"k": None, "y": 1}, {"k": 1, "y": 2}], ["k"], label="R")
    assert Join()(left, right).as_table().to_pylist() == [{"k": 1, "x": 2, "y": 2}]


def test_shared_tag_is_nullable_only_when_nullable_everywhere() -> None:
    left = source([{"k": None, "x": 1}, {"k": 1, "x": 2}], ["k"], label="L")
    right = source([{"k": 1, "y": 2}], ["k"], label="R")
    both = source([{"k": None, "z": 1}], ["k"], schema={"k": int | None, "z": int}, label="N")
    assert Join()(left, right).output_schema()[0] == Schema({"k": int})
    assert Join()(left, both).output_schema()[0] == Schema({"k": int | None})


def test_single_input_is_renamed_and_keeps_its_order(b) -> None:
    joined = Join()(b)
    expected = [r["id"] for r in b.as_table().to_pylist()]
    assert [r["id"] for r in joined.as_table().to_pylist()] == expected
    (h,) = {parse_system_tag(n).hops for n in system_tag_names(joined)}
    assert h == ((b.pipeline_hash().hex[:12], 0),)


def test_one_stream_joined_with_an_empty_one_is_empty_and_typed(a) -> None:
    empty = source([], schema={"id": int, "y": str}, label="E")
    joined = Join()(a, empty)
    table = full(joined)
    assert table.num_rows == 0
    assert joined.output_schema() == (Schema({"id": int}), Schema({"x": float, "y": str}))
    assert_prediction_matches(joined)
    assert TableStream(table, ["id"]).output_schema(system_tags=True) == joined.output_schema(
        system_tags=True
    )


# --------------------------------------------------------------------------- errors


def test_overlapping_packet_columns_are_named(a) -> None:
    other = source([{"id": 1, "x": 9.0, "w": 1}], label="B")
    third = source([{"id": 1, "w": 2, "z": 0}], label="C")
    with pytest.raises(OperatorError) as info:
        Join()(a, other, third)
    message = str(info.value)
    assert message.startswith("Join: packet column(s) 'w', 'x' appear in more than one input")
    assert "'w' in input 1 ('B'), input 2 ('C'); 'x' in input 0 ('A'), input 1 ('B')" in message
    assert "MergeJoin" in message
    assert isinstance(info.value, InputValidationError)


def test_conflicting_tag_types_are_named_sorted(a) -> None:
    other = source([{"id": "1", "k": 1, "y": 1}], ["id", "k"], label="B")
    third = source([{"k": 1.5, "id": 2, "z": 1}], ["id", "k"], label="C")
    with pytest.raises(OperatorError) as info:
        Join()(a, other, third)
    assert str(info.value) == (
        "Join: tag column(s) with conflicting types: "
        "'id' (int in input 0 ('A'); int in input 2 ('C'); str in input 1 ('B')), "
        "'k' (float in input 2 ('C'); int in input 1 ('B'))"
    )


def test_tag_in_one_input_packet_in_another(a) -> None:
    other = source([{"k": 1, "id": 1}], ["k"], label="B")
    with pytest.raises(OperatorError, match=r"Join: column\(s\) 'id' are tag columns in one"):
        Join()(a, other)


def test_no_input_and_non_stream_inputs(a) -> None:
    with pytest.raises(OperatorError, match="Join: needs at least one input stream"):
        Join()()
    with pytest.raises(OperatorError, match=r"Join: input\(s\) 1 \(list\) are not streams"):
        Join()(a, [1, 2])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- system tags


def test_system_tags_follow_the_lineage_rule(a, b) -> None:
    joined = Join()(a, b)
    hashes = sorted([a.pipeline_hash(), b.pipeline_hash()], key=str)
    expected = []
    for position, h in enumerate(hashes):
        for name in system_tag_columns(h.hex[:12]):
            expected.append(extend_lineage(name, h.hex, position))
    assert system_tag_names(joined) == sorted(expected)
    table = full(joined).sort_by("id")
    a_source, a_record = (
        extend_lineage(n, a.pipeline_hash().hex, hashes.index(a.pipeline_hash()))
        for n in system_tag_columns(a.pipeline_hash().hex[:12])
    )
    assert table.column(a_source).to_pylist() == [a.source_id] * 2
    assert table.column(a_record).to_pylist() == ["#0", "#1"]


def test_system_tag_names_do_not_depend_on_input_order(a, b) -> None:
    c = source([{"id": 1, "z": True}], label="C")
    names = {tuple(system_tag_names(Join()(*p))) for p in itertools.permutations([a, b, c])}
    assert len(names) == 1
    (only,) = names
    positions = sorted({parse_system_tag(n).hops[-1][1] for n in only})
    assert positions == [0, 1, 2]


def test_nested_joins_extend_names_again(a, b) -> None:
    c = source([{"id": 1, "z": True}], label="C")
    inner = Join()(a, b)
    outer = Join()(inner, c)
    hops = {len(parse_system_tag(n).hops) for n in system_tag_names(outer)}
    assert hops == {1, 2}  # C's columns passed one join, A's and B's two
    assert outer.as_table().to_pylist() == [{"id": 1, "x": 0.5, "y": "a", "z": True}]


def test_source_info_passes_through_unchanged(a, b) -> None:
    table = full(Join()(a, b)).sort_by("id")
    assert table.column("__source:x").to_pylist() == [
        f"source::{a.source_id}::#0::x",
        f"source::{a.source_id}::#1::x",
    ]
    assert table.column("__source:y").to_pylist() == [
        f"source::{b.source_id}::#1::y",
        f"source::{b.source_id}::#0::y",
    ]


# --------------------------------------------------------------------------- commutativity


def test_commutative_identity_and_rows(a, b) -> None:
    c = source([{"id": 1, "z": True}, {"id": 2, "z": False}], label="C")
    results = [Join()(*p) for p in itertools.permutations([a, b, c])]
    assert len({r.content_hash() for r in results}) == 1
    assert len({r.pipeline_hash() for r in results}) == 1
    first = results[0].as_table(all_info=True)
    for r in results[1:]:
        assert r.as_table(all_info=True).equals(first)


def test_argument_and_column_order_do_not_matter_row_order_follows_inputs() -> None:
    columns = {
        "id": pa.array([3, 1, 2, 1]),
        "rid": pa.array(["r3", "r1", "r2", "r4"]),
        "x": pa.array([0.3, 0.1, 0.2, 0.4]),
    }
    table = pa.table(columns)
    shuffled = table.select(["x", "rid", "id"]).take([2, 0, 3, 1])
    options = {"record_id_column": "rid", "source_id": "left"}
    left = ArrowTableSource(table, ["id"], **options)
    left_shuffled = ArrowTableSource(shuffled, ["id"], **options)
    right = source([{"id": 1, "y": "a"}, {"id": 2, "y": "b"}], label="R")
    out = Join()(left, right).as_table(all_info=True)
    assert Join()(right, left).as_table(all_info=True).equals(out)
    # Shuffling an input's rows or columns changes neither the rows nor their columns.
    shuffled_out = Join()(right, left_shuffled).as_table(all_info=True)
    assert shuffled_out.column_names == out.column_names
    assert sorted(shuffled_out.to_pylist(), key=repr) == sorted(out.to_pylist(), key=repr)
    # Rows follow the first input in canonical order (by pipeline hash), then the next.
    first = min((left, right), key=lambda s: str(s.pipeline_hash()))
    if first is left:
        assert out.column("rid").to_pylist() == ["r1", "r2", "r4"]
    else:
        assert out.column("id").to_pylist() == [1, 1, 2]


def test_not_equal_to_other_operators_or_inputs(a, b) -> None:
    assert Join()(a, b).content_hash() != Join()(a).content_hash()
    assert Join().content_hash() == Join().content_hash()
    assert Join.identity_kind() == "Join"


def test_streams_without_tags_combine_every_row() -> None:
    left = source([{"x": 1}, {"x": 2}], [], label="L")
    right = source([{"y": 3}], [], label="R")
    joined = Join()(left, right)
    assert joined.keys() == ((), ("x", "y"))
    assert joined.as_table().to_pylist() == [{"x": 1, "y": 3}, {"x": 2, "y": 3}]
    assert_prediction_matches(joined)


def test_large_join_matches_polars() -> None:
    # Large enough for the parallel gathering path; the source-id columns are constant.
    n = 100_000
    rng = np.random.default_rng(7)
    left = ArrowTableSource(pa.table({"id": rng.permutation(n), "x": rng.random(n)}), ["id"])
    right = ArrowTableSource(
        pa.table({"id": rng.integers(0, n, n), "y": rng.integers(0, 9, n)}), ["id"]
    )
    joined = Join()(left, right)
    expected = (
        pl.from_arrow(left.as_table())
        .join(pl.from_arrow(right.as_table()), on="id")
        .sort(["id", "x", "y"])
    )
    got = pl.from_arrow(joined.as_table()).sort(["id", "x", "y"])
    assert got.equals(expected)
    table = full(joined)
    # Rows follow the canonical first input's order; argument order changes nothing.
    assert Join()(right, left).as_table().equals(joined.as_table())
    assert_prediction_matches(joined)
    for name in system_tag_names(joined):
        if parse_system_tag(name).kind == "source_id":
            assert set(table.column(name).to_pylist()) <= {left.source_id, right.source_id}


@pytest.mark.parametrize("operator", ["join", "semi_join", "merge_join"])
@pytest.mark.parametrize("other_zone", ["America/New_York", None], ids=["zoned", "naive"])
def test_timestamp_tags_of_different_zones_are_an_error_not_no_rows(
    operator: str, other_zone: str | None
) -> None:
    """podline's schemas show every timestamp as ``datetime``, but a time in one zone never
    equals one in another (their key forms differ): matching on them is an error naming the
    column and the zones, where it silently gave no rows (a user test)."""
    base = pl.DataFrame({"ts": [dt.datetime(2024, 1, 1, 12)], "a": [1]})
    utc = base.with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    other = (
        base.with_columns(pl.col("ts").dt.replace_time_zone("UTC").dt.convert_time_zone(other_zone))
        if other_zone
        else base
    ).rename({"a": "b"})
    left = podline.DataFrameSource(utc, tag_columns=["ts"], label="left")
    right = podline.DataFrameSource(
        other.rename({"b": "a"}) if operator == "merge_join" else other,
        tag_columns=["ts"],
        label="right",
    )
    shown = ", ".join(sorted([other_zone or "naive", "UTC"]))
    with pytest.raises(OperatorError, match=re.escape(f"'ts' ({shown})")):
        getattr(left, operator)(right).as_table()
    same = podline.DataFrameSource(utc.rename({"a": "b"}), tag_columns=["ts"], label="same")
    assert left.join(same).as_table().num_rows == 1  # one zone: matched
