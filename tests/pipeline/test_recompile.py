"""Extending a compiled pipeline: entering ``with pipeline:`` again adds nodes and keeps the
existing ones, as the same objects with what they hold."""

from __future__ import annotations

import podline
from podline import function_pod
from podline.functions import RowStatus
from podline.nodes import CacheMode
from podline.pipeline import Pipeline
from podline.stores import Store

CALLS: list[str] = []


@function_pod("y", live_output=False)
def double(x: int) -> int:
    CALLS.append(f"double({x})")
    return 2 * x


@function_pod("z", live_output=False)
def plus_one(y: int) -> int:
    CALLS.append(f"plus_one({y})")
    return y + 1


def test_entering_again_adds_nodes_and_keeps_the_old_ones_with_their_state(
    store: Store,
) -> None:
    CALLS.clear()
    source = podline.DictSource([{"id": 1, "x": 1}, {"id": 2, "x": 2}], tag_columns=["id"])
    with Pipeline("extend", store) as pipeline:
        doubled = double.pod(source)
        renamed = doubled.map_packets({"y": "y2"}, label="renamed")  # an operator, CacheMode.OFF
    pipeline.run()
    before = pipeline.nodes
    uri = pipeline.uri
    assert len(pipeline.renamed) == 2
    assert pipeline.double.counts[RowStatus.COMPUTED] == 2

    with pipeline:
        plus_one.pod(doubled)
        double.pod(source)  # the same invocation again: merges into the existing node
    after = pipeline.nodes
    assert list(after) == [*before, "plus_one"]
    for label, node in before.items():
        assert after[label] is node, label  # the same objects...
    assert len(pipeline.renamed) == 2  # ...with their state: the operator's output is kept
    assert pipeline.renamed.as_table().column("y2").to_pylist() == [2, 4]
    assert pipeline.double.counts[RowStatus.COMPUTED] == 2
    assert pipeline.uri != uri  # the graph changed
    assert renamed.label == "renamed"

    CALLS.clear()
    result = pipeline.run()
    assert sorted(CALLS) == ["plus_one(2)", "plus_one(4)"]  # only the new node computes
    assert result.counts["double"].cached == 2
    assert pipeline.plus_one.as_table().column("z").to_pylist() == [3, 5]


def test_a_recompile_keeps_cache_modes_and_stores_of_kept_nodes(store: Store) -> None:
    source = podline.DictSource([{"id": 1, "x": 1}], tag_columns=["id"])
    with Pipeline("modes", store, cache_modes={"renamed": CacheMode.LOG}) as pipeline:
        double.pod(source).map_packets({"y": "y2"}, label="renamed")
    node = pipeline.renamed
    with pipeline:
        plus_one.pod(double.pod(source))
    assert pipeline.renamed is node
    assert pipeline.renamed.cache_mode is CacheMode.LOG
    assert pipeline.renamed.store is not None
    assert pipeline.plus_one.store is not None
