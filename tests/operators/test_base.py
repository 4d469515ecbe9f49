"""What every operator shares: identity, the Producer seam, eager validation, stream methods."""

from __future__ import annotations

import inspect
from typing import Any

import polars as pl
import pytest

from podline import Stream, TableStream
from podline.errors import OperatorError
from podline.hashing import Unordered
from podline.operators import (
    Batch,
    DropPacketColumns,
    DropTagColumns,
    Filter,
    Join,
    MapPackets,
    MapTags,
    MergeJoin,
    Operator,
    SelectPacketColumns,
    SelectTagColumns,
    SemiJoin,
)
from podline.streams import ProducedStream, Producer, tracking

from .helpers import source


@pytest.fixture
def a():
    return source([{"id": 1, "x": 0.5}, {"id": 2, "x": 1.5}], label="A")


@pytest.fixture
def b():
    return source([{"id": 2, "y": "b"}, {"id": 1, "y": "a"}], label="B")


OPERATORS: list[Operator] = [
    Join(),
    MergeJoin(),
    SemiJoin(),
    Batch(2),
    SelectTagColumns("id"),
    SelectPacketColumns("x"),
    DropTagColumns("id"),
    DropPacketColumns("x", strict=False),
    MapTags({"id": "key"}),
    MapPackets({"x": "z"}),
    Filter(pl.col("id") > 1),
]


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: type(op).__name__)
def test_every_operator_is_a_producer(op: Operator) -> None:
    assert isinstance(op, Producer)
    assert op.label == type(op).__name__
    assert type(op).identity_kind() == type(op).__name__
    assert op.content_hash() == op.pipeline_hash()


def test_identity_is_the_parameters() -> None:
    assert (
        MapTags({"a": "b", "c": "d"}).content_hash() == MapTags({"c": "d", "a": "b"}).content_hash()
    )
    assert MapTags({"a": "b"}).content_hash() != MapPackets({"a": "b"}).content_hash()
    assert MapTags({"a": "b"}).content_hash() != MapTags({"a": "b"}, strict=False).content_hash()
    assert SelectTagColumns("a").content_hash() != DropTagColumns("a").content_hash()
    assert repr(SelectTagColumns(["b", "a"])) == "SelectTagColumns(columns=('a', 'b'), strict=True)"


def test_argument_identity(a, b) -> None:
    assert Join().argument_identity([a, b]) == Unordered([a, b])
    assert MergeJoin().argument_identity([a, b]) == Unordered([a, b])
    assert SemiJoin().argument_identity([a, b]) == (a, b)
    assert Batch().argument_identity([a]) == (a,)


def test_application_is_lazy_recorded_and_labelled(a, b) -> None:
    recorded: list[ProducedStream] = []

    class Recorder:
        def record(self, stream: ProducedStream) -> None:
            recorded.append(stream)

    with tracking(Recorder()):
        joined = Join()(a, b, label="both")
        batched = joined.batch(2)
    assert recorded == [joined, batched]
    assert joined.label == "both"
    assert batched.label == "Batch"
    assert isinstance(joined, Stream)
    assert not joined.is_computed
    assert batched.upstreams == (joined,)
    assert joined.content_hash() != batched.content_hash()
    assert not joined.is_computed  # hashing computes nothing
    assert isinstance(batched.producer.process(joined), TableStream)


def test_validation_happens_at_application(a) -> None:
    with pytest.raises(OperatorError, match=r"Batch: takes 1 input stream\(s\), got 2"):
        Batch()(a, a)
    with pytest.raises(OperatorError, match="SemiJoin: takes 2"):
        SemiJoin()(a)
    with pytest.raises(OperatorError, match=r"input\(s\) 0 \(int\) are not streams"):
        Batch()(3)  # type: ignore[arg-type]
    with pytest.raises(OperatorError, match="MapPackets: unknown packet column"):
        MapPackets({"nope": "x"})(a)


def test_output_schema_without_applying(a, b) -> None:
    tags, packets = Join().output_schema(a, b)
    assert list(tags) == ["id"]
    assert list(packets) == ["x", "y"]
    with_system = Join().output_schema(a, b, system_tags=True)[0]
    assert len(with_system) == 5


def test_operators_on_produced_and_table_streams(a, b) -> None:
    joined = a.join(b)
    table = TableStream(joined.as_table(system_tags=True, source_info=True), ["id"])
    for stream in (joined, table):
        assert stream.select_packet_columns("y").keys() == (("id",), ("y",))
        assert len(stream.filter(pl.col("id") == 1)) == 1


# --------------------------------------------------------------------------- stream methods

METHODS = {
    "join": Join,
    "merge_join": MergeJoin,
    "semi_join": SemiJoin,
    "batch": Batch,
    "map_tags": MapTags,
    "map_packets": MapPackets,
    "select_tag_columns": SelectTagColumns,
    "select_packet_columns": SelectPacketColumns,
    "drop_tag_columns": DropTagColumns,
    "drop_packet_columns": DropPacketColumns,
    "filter": Filter,
}


def _defaults(signature: inspect.Signature) -> dict[str, Any]:
    return {
        name: p.default
        for name, p in signature.parameters.items()
        if p.default is not inspect.Parameter.empty and name != "label"
    }


@pytest.mark.parametrize("name", sorted(METHODS))
def test_stream_methods_share_the_operator_defaults(name: str) -> None:
    method = inspect.signature(getattr(TableStream, name))
    operator = inspect.signature(METHODS[name].__init__)
    assert _defaults(method) == _defaults(operator)
    assert "label" in method.parameters


def test_stream_methods_build_the_same_streams(a, b) -> None:
    cases = [
        (a.join(b), Join()(a, b)),
        (a.merge_join(b), MergeJoin()(a, b)),
        (a.semi_join(b), SemiJoin()(a, b)),
        (a.batch(), Batch()(a)),
        (a.batch(1, True), Batch(1, True)(a)),
        (a.map_tags({"id": "k"}), MapTags({"id": "k"})(a)),
        (a.map_packets({"x": "z"}, True), MapPackets({"x": "z"}, True)(a)),
        (a.select_tag_columns("id"), SelectTagColumns("id")(a)),
        (a.select_packet_columns(["x"]), SelectPacketColumns(["x"])(a)),
        (a.drop_tag_columns("id"), DropTagColumns("id")(a)),
        (a.drop_packet_columns("q", strict=False), DropPacketColumns("q", strict=False)(a)),
        (
            a.filter(pl.col("x") > 1, constraints={"id": 2}),
            Filter(pl.col("x") > 1, constraints={"id": 2})(a),
        ),
    ]
    for method_result, operator_result in cases:
        assert method_result.content_hash() == operator_result.content_hash()
        assert method_result.as_table(all_info=True).equals(operator_result.as_table(all_info=True))
