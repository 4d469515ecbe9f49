"""Select, drop and rename tag or packet columns; source info follows, system tags stay."""

from __future__ import annotations

import pytest

from podline import Schema
from podline.errors import OperatorError
from podline.operators import (
    DropPacketColumns,
    DropTagColumns,
    MapPackets,
    MapTags,
    SelectPacketColumns,
    SelectTagColumns,
)

from .helpers import assert_prediction_matches, full, source, system_tag_names


@pytest.fixture
def stream():
    rows = [
        {"a": 1, "b": "x", "p": 0.5, "q": True, "r": "s"},
        {"a": 2, "b": "y", "p": 1.5, "q": False, "r": "t"},
    ]
    return source(rows, ["a", "b"], label="S")


def test_select_and_drop_tags_keep_system_tags(stream) -> None:
    for stream_ in (SelectTagColumns("b")(stream), DropTagColumns(["a"])(stream)):
        assert stream_.keys() == (("b",), ("p", "q", "r"))
        assert system_tag_names(stream_) == system_tag_names(stream)
        assert full(stream_).column("b").to_pylist() == ["x", "y"]
        assert_prediction_matches(stream_)
    assert SelectTagColumns([])(stream).keys()[0] == ()


def test_select_and_drop_packets_take_source_info_along(stream) -> None:
    selected = SelectPacketColumns(["r", "p"])(stream)
    dropped = DropPacketColumns("q")(stream)
    for result in (selected, dropped):
        assert result.keys()[1] == ("p", "r")  # input order, not the order given
        table = full(result)
        assert [c for c in table.column_names if c.startswith("__source:")] == [
            "__source:p",
            "__source:r",
        ]
        assert (
            table.column("__source:r").to_pylist() == full(stream).column("__source:r").to_pylist()
        )
        assert_prediction_matches(result)


def test_names_are_a_set(stream) -> None:
    forward, backward = SelectPacketColumns(["p", "r"]), SelectPacketColumns(["r", "p"])
    assert forward.content_hash() == backward.content_hash()
    with pytest.raises(OperatorError, match=r"SelectTagColumns: column\(s\) 'a' are named more"):
        SelectTagColumns(["a", "a"])


def test_strict_unknown_names_are_errors(stream) -> None:
    with pytest.raises(OperatorError) as info:
        SelectTagColumns(["zz", "p", "a"])(stream)
    assert str(info.value) == (
        "SelectTagColumns: unknown tag column(s) 'p', 'zz' ('p': packet column(s)); "
        "tag columns are 'a', 'b'"
    )
    with pytest.raises(OperatorError, match=r"DropPacketColumns: unknown packet column\(s\) 'a'"):
        DropPacketColumns("a")(stream)
    assert DropPacketColumns(["zz", "q"], strict=False)(stream).keys()[1] == ("p", "r")


def test_removing_every_packet_column_is_an_error(stream) -> None:
    with pytest.raises(OperatorError, match="DropPacketColumns: would remove every packet column"):
        DropPacketColumns(["p", "q", "r"])(stream)
    with pytest.raises(OperatorError, match="SelectPacketColumns: would remove every packet"):
        SelectPacketColumns(["zz"], strict=False)(stream)


def test_map_packets_renames_source_info_keeping_tokens(stream) -> None:
    renamed = MapPackets({"p": "price", "r": "q2"})(stream)
    assert renamed.keys() == (("a", "b"), ("price", "q", "q2"))
    table, before = full(renamed), full(stream)
    assert table.column("__source:price").to_pylist() == before.column("__source:p").to_pylist()
    assert table.column("__source:price").to_pylist()[0].endswith("::p")  # names the origin
    assert "__source:p" not in table.column_names
    assert system_tag_names(renamed) == system_tag_names(stream)
    assert_prediction_matches(renamed)


def test_map_tags_and_drop_unmapped(stream) -> None:
    renamed = MapTags({"a": "subject"}, drop_unmapped=True)(stream)
    assert renamed.keys()[0] == ("subject",)
    assert renamed.output_schema()[0] == Schema({"subject": int})
    only = MapPackets({"q": "p"}, drop_unmapped=True)(stream)  # p is dropped, so free
    assert only.keys()[1] == ("p",)
    assert (
        full(only).column("__source:p").to_pylist() == full(stream).column("__source:q").to_pylist()
    )
    swapped = MapPackets({"p": "q", "q": "p"})(stream)
    assert swapped.as_table().column("q").to_pylist() == [0.5, 1.5]
    for result in (renamed, only, swapped):
        assert_prediction_matches(result)


def test_map_collisions_and_unknown_names(stream) -> None:
    with pytest.raises(OperatorError) as info:
        MapPackets({"p": "q"})(stream)
    assert str(info.value) == "MapPackets: renaming would make duplicate column name(s) 'q'"
    with pytest.raises(OperatorError, match=r"MapTags: renaming would make duplicate .* 'p'"):
        MapTags({"a": "p"})(stream)
    with pytest.raises(OperatorError, match=r"several columns would be renamed to 'z'"):
        MapTags({"a": "z", "b": "z"})
    with pytest.raises(OperatorError, match=r"MapTags: .*'__x'.* reserved prefix"):
        MapTags({"a": "__x"})
    with pytest.raises(OperatorError, match=r"MapTags: unknown tag column\(s\) 'zz'"):
        MapTags({"zz": "y"})(stream)
    assert MapTags({"zz": "y"}, strict=False)(stream).keys() == stream.keys()
    with pytest.raises(OperatorError, match="drop_unmapped would remove every packet column"):
        MapPackets({}, drop_unmapped=True)(stream)


def test_empty_inputs_give_typed_empty_outputs() -> None:
    empty = source([], ["a"], schema={"a": int, "p": float, "q": str}, label="E")
    for op in (
        SelectTagColumns([]),
        DropTagColumns("a"),
        SelectPacketColumns("p"),
        DropPacketColumns("p"),
        MapTags({"a": "b"}),
        MapPackets({"p": "z"}),
    ):
        result = op(empty)
        assert len(result) == 0
        assert_prediction_matches(result)
