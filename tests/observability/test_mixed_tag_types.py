"""``status()`` and ``logs()`` over nodes that disagree on a tag column's type: scalar tags in
one node, the same tags batched into lists in the node after a ``batch()``. Such a column is
text in every row (``podline.value_text``); filters still compare each node's typed values."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import podline
from podline import function_pod
from podline.pipeline import Pipeline
from podline.stores import DeltaStore
from podline.value_text import as_text, short_repr, short_text


@function_pod("y")
def double(x: float) -> float:
    print("doubling", x)
    if x == 2:
        raise ValueError("no 2")
    return 2 * x


@function_pod("total")
def total(y: list[float]) -> float:
    print("summing", len(y))
    return sum(y)


@pytest.fixture
def batched(tmp_path: Path) -> Pipeline:
    """``double`` (int tag ``k``, text tag ``plot``; fails at k == 2), then ``total`` of the
    batch of the other five: its ``k`` is ``list[int]``, its ``plot`` ``list[str]``."""
    rows = [{"k": i, "plot": f"p{i}", "x": float(i)} for i in range(6)]
    source = podline.DictSource(rows, tag_columns=["k", "plot"], source_id="s")
    with podline.Pipeline("batched", DeltaStore(tmp_path / "store")) as pipeline:
        total.pod(double.pod(source).batch(label="all"))
    pipeline.run()
    return pipeline


BATCH_K = "[0, 1, 3, 4, 5]"
BATCH_PLOT = '["p0", "p1", "p3", "p4", "p5"]'


def test_status_of_every_node_shows_a_tag_of_disagreeing_types_as_text(
    batched: Pipeline,
) -> None:
    status = batched.status()
    assert status.schema["k"] == status.schema["plot"] == pl.String
    assert status.select("node", "state", "k", "plot").rows() == [
        ("double", "FAILED", "2", "p2"),
        *(("double", "SUCCESS", str(k), f"p{k}") for k in (0, 1, 3, 4, 5)),
        ("total", "SUCCESS", BATCH_K, BATCH_PLOT),
    ]
    # System tags are lists after the batch too: as text, whole.
    (record_ids,) = [c for c in status.columns if c.startswith("tag:record_id::")]
    assert status[record_ids].to_list() == [
        *(f"#{k}" for k in (2, 0, 1, 3, 4, 5)),
        '["#0", "#1", "#3", "#4", "#5"]',
    ]
    # One node alone keeps its types.
    assert batched.status(node="total").schema["k"] == pl.List(pl.Int64)
    assert batched.status(node="double").schema["k"] == pl.Int64


def test_filters_compare_each_nodes_typed_values(batched: Pipeline) -> None:
    def shown(frame: pl.DataFrame) -> list[tuple[object, ...]]:
        return frame.select("node", "k").rows()

    # A scalar matches the scalar rows, never a list holding it; the column stays text, as
    # without the filter (the type follows the nodes read, not the rows kept).
    assert shown(batched.status(k=1)) == [("double", "1")]
    assert shown(batched.status(plot="p1")) == [("double", "1")]
    assert shown(batched.status(k=[0, 1, 3, 4, 5])) == [("total", BATCH_K)]
    assert shown(batched.status(plot=["p0", "p1", "p3", "p4", "p5"])) == [("total", BATCH_K)]
    assert batched.status(node="total", k=1).is_empty()
    assert shown(batched.status(state="FAILED")) == [("double", "2")]
    batched.run()  # served from the store: a second row per packet
    history = batched.status(latest=False)
    assert history.height == 2 * 7
    assert set(shown(history)) == {*(("double", str(k)) for k in range(6)), ("total", BATCH_K)}
    assert batched.status(k=1, latest=False).select("k", "state").rows() == [
        ("1", "SUCCESS"),
        ("1", "CACHED"),
    ]
    # Text compares with what the frame shows, as ``podline status --tag`` does.
    assert shown(batched.status(k="1")) == [("double", "1")]
    assert shown(batched.status(k=BATCH_K, plot=BATCH_PLOT)) == [("total", BATCH_K)]


def test_logs_of_every_node_show_a_tag_of_disagreeing_types_as_text(batched: Pipeline) -> None:
    logs = batched.logs()
    assert logs.select("node", "k", "plot", "stdout").rows() == [
        *(("double", str(k), f"p{k}", f"doubling {float(k)}\n") for k in range(6)),
        ("total", BATCH_K, BATCH_PLOT, "summing 5\n"),
    ]
    assert logs.filter(pl.col("node") == "double").shape == batched.logs(node="double").shape
    assert batched.logs(k=3).select("node", "k").rows() == [("double", "3")]
    assert batched.logs(state="FAILED").select("node", "k").rows() == [("double", "2")]


def test_values_as_text_whole_and_shortened() -> None:
    column = pl.Series("k", [[0, 1], None, list(range(1284))])
    assert as_text(column).to_list() == ["[0, 1]", None, str(list(range(1284)))]
    structs = pl.Series("s", [{"a": 1, "b": "é"}])
    assert as_text(structs).to_list() == ['{"a": 1, "b": "é"}']
    assert as_text(pl.Series("b", [b"\x01\xff"])).to_list() == ["01ff"]
    assert as_text(pl.Series("n", [1, None])).to_list() == ["1", None]
    # As polars prints lists: the first two items, "…", the last.
    assert short_repr(list(range(1284))) == "[0, 1, … 1283]"
    assert short_repr([[1, 2, 3, 4], ["a"]]) == '[[1, 2, … 4], ["a"]]'
    assert short_repr({"ids": ["a", "b", "c", "d"]}) == '{"ids": ["a", "b", … "d"]}'
    assert short_repr("s01") == "'s01'"
    assert short_repr(3) == "3"
    assert short_repr("x" * 100) == repr("x" * 79 + "…")
    # Text as_text wrote for a list reads as the list.
    assert short_repr(str(list(range(1284)))) == "[0, 1, … 1283]"
    assert short_text(str(list(range(1284)))) == "[0, 1, … 1283]"
    assert short_text("[not json") == "[not json"
    assert short_text("p1") == "p1"
