"""Every operator's predicted schema equals the computed one, over a range of column types."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import polars as pl
import pyarrow as pa
import pytest

from podline import ArrowTableSource, Stream
from podline.operators import (
    Batch,
    DropPacketColumns,
    DropTagColumns,
    Filter,
    Join,
    MapPackets,
    MapTags,
    MergeJoin,
    SelectPacketColumns,
    SelectTagColumns,
    SemiJoin,
)

from .helpers import assert_prediction_matches

UTC = dt.UTC


def _left(rows: slice = slice(None)) -> ArrowTableSource:
    table = pa.table(
        {
            "key": pa.array([[1, 2], [3], None, [1, 2]], pa.large_list(pa.int64())),
            "when": pa.array([dt.datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3, 4)]),
            "day": pa.array([dt.date(2024, 1, d) for d in (1, 2, 3, 4)]),
            "small": pa.array([1, 2, 3, 4], pa.int32()),
            "rec": pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": None}, None, {"a": 4, "b": "w"}]),
            "m": pa.array([[("k", 1)], [], [("j", 2)], None], pa.map_(pa.string(), pa.int64())),
            "f": pa.array([0.5, float("nan"), None, -0.0]),
        }
    ).slice(rows.start or 0, (rows.stop or 4) - (rows.start or 0))
    return ArrowTableSource(table, ["key", "when", "day", "small"], label="left")


def _right(rows: slice = slice(None)) -> ArrowTableSource:
    table = pa.table(
        {
            "key": pa.array([[1, 2], [3], [9]], pa.large_list(pa.int64())),
            "small": pa.array([1, 2, 4], pa.int64()),
            "f": pa.array([1.0, None, 2.0]),
            "g": pa.array(["p", "q", None], pa.string()),
        }
    ).slice(rows.start or 0, (rows.stop or 3) - (rows.start or 0))
    return ArrowTableSource(table, ["key", "small"], label="right")


Case = Callable[[Stream, Stream], Stream]

CASES: dict[str, Case] = {
    "join": lambda left, right: Join()(left, right.drop_packet_columns("f")),
    "join3": lambda left, right: Join()(
        left,
        right.select_packet_columns("g"),
        right.map_packets({"f": "h"}, True).map_tags({"key": "k2"}),
    ),
    "merge_join": lambda left, right: MergeJoin()(left.select_packet_columns("f"), right),
    "semi_join": SemiJoin(),
    "batch": lambda left, right: Batch(3)(left),
    "batch_of_join": lambda left, right: Batch()(Join()(left, right.drop_packet_columns("f"))),
    "select_tags": lambda left, right: SelectTagColumns(["day", "key"])(left),
    "drop_tags": lambda left, right: DropTagColumns("when")(left),
    "select_packets": lambda left, right: SelectPacketColumns(["m", "rec"])(left),
    "drop_packets": lambda left, right: DropPacketColumns("m")(left),
    "map_tags": lambda left, right: MapTags({"key": "k", "day": "date"})(left),
    "map_packets": lambda left, right: MapPackets({"rec": "record"}, drop_unmapped=True)(left),
    "filter": lambda left, right: Filter(
        pl.col("small") > 1, constraints={"day": dt.date(2024, 1, 4)}
    )(left),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_prediction_matches_computation(name: str) -> None:
    assert_prediction_matches(CASES[name](_left(), _right()))


@pytest.mark.parametrize("name", sorted(CASES))
def test_prediction_matches_on_empty_inputs(name: str) -> None:
    for left, right in ((_left(slice(0, 0)), _right()), (_left(), _right(slice(0, 0)))):
        result = CASES[name](left, right)
        assert_prediction_matches(result)


def test_nested_tags_join_by_value() -> None:
    joined = Join()(_left(), _right().drop_packet_columns("f"))
    rows = joined.as_table().select(["key", "small", "g"]).to_pylist()
    # Lists match by value (the null key matches nothing); row 3 has key [1, 2] but small 4.
    assert sorted(rows, key=str) == [
        {"key": [1, 2], "small": 1, "g": "p"},
        {"key": [3], "small": 2, "g": "q"},
    ]


def test_merge_join_sorts_floats_with_nan_and_nulls_last() -> None:
    left = _left().select_packet_columns("f")
    for merged in (MergeJoin()(left, _right()), MergeJoin()(_right(), left)):
        values = merged.as_table().column("f").to_pylist()
        assert sorted(map(str, values)) == ["[0.5, 1.0]", "[nan, None]"]
