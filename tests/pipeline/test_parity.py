"""Sync and async orchestrators agree: {sync, async} orchestrator x {plain, ``async def``}
function x {linear, operator, diamond, fan-out, source-only} topology, on every store backend.

For each case the same pipeline is built twice, in two scopes of one store, and run once by
each orchestrator. They must give the same counts, the same rows in every node (as sets,
system-tag and source-info columns included; in the same order too, except downstream of a
streaming join), the same store contents (memo, provenance records, LOG rows; run records
aside) and the same hook calls per node. The async runs use tiny chunks so that every
streaming operator sees many of them.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

import podline
from podline import SKIP, function_pod
from podline.columns import meta_column
from podline.nodes import SourceNode
from podline.operators import Join, MergeJoin, SemiJoin
from podline.pipeline import (
    AsyncPipelineOrchestrator,
    Observer,
    OrchestratorResult,
    Pipeline,
    PipelineGraph,
    SyncPipelineOrchestrator,
)
from podline.stores import Store

N = 9


# --------------------------------------------------------------------------- functions
@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    return a + b


@function_pod("doubled", live_output=False)
def double(total: int) -> int:
    return SKIP if total == 0 else 2 * total


@function_pod("product", live_output=False)
def times(a: int, b: int) -> int:
    return a * b


@function_pod("z", live_output=False)
def combine(total: int, product: int) -> int:
    return total + product


@function_pod("total", live_output=False)
async def add_async(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@function_pod("doubled", live_output=False)
async def double_async(total: int) -> int:
    await asyncio.sleep(0)
    return SKIP if total == 0 else 2 * total


@function_pod("product", live_output=False)
async def times_async(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a * b


@function_pod("z", live_output=False)
async def combine_async(total: int, product: int) -> int:
    await asyncio.sleep(0)
    return total + product


FUNCTIONS: dict[str, dict[str, Any]] = {
    "plain": {"add": add, "double": double, "times": times, "combine": combine},
    "async_def": {
        "add": add_async,
        "double": double_async,
        "times": times_async,
        "combine": combine_async,
    },
}


def numbers(label: str = "numbers") -> podline.Source:
    rows = [{"id": i, "a": i, "b": i % 4} for i in range(N)]
    return podline.DictSource(rows, tag_columns=["id"], label=label)


def extra(label: str = "extra") -> podline.Source:
    rows = [{"id": i, "c": 10 * i} for i in range(0, N, 2)]
    return podline.DictSource(rows, tag_columns=["id"], label=label)


# --------------------------------------------------------------------------- topologies
Built = Pipeline | PipelineGraph


def linear(store: Store, fn: dict[str, Any]) -> Built:
    with Pipeline("linear", store, observe=False) as pipeline:
        fn["double"].pod(fn["add"].pod(numbers()))
    return pipeline


def operator(store: Store, fn: dict[str, Any]) -> Built:
    with Pipeline("operator", store, observe=False, cache_modes={"ids": "log"}) as pipeline:
        sums = fn["add"].pod(numbers())
        sums.filter(pl.col("total") > 2, label="big").map_packets({"total": "t"}, label="renamed")
        sums.batch(4, label="batched")
        sums.batch(4, drop_partial=True, label="full_batches")
        SemiJoin()(sums, extra(), label="kept")
        sums.select_tag_columns(["id"], label="ids")
    return pipeline


def diamond(store: Store, fn: dict[str, Any]) -> Built:
    source = numbers()
    with Pipeline("diamond", store, observe=False) as pipeline:
        joined = Join()(fn["add"].pod(source), fn["times"].pod(source), label="joined")
        fn["combine"].pod(joined)
    return pipeline


def fan_out(store: Store, fn: dict[str, Any]) -> Built:
    source = numbers()
    with Pipeline("fan_out", store, observe=False) as pipeline:
        sums = fn["add"].pod(source)
        fn["double"].pod(sums)
        sums.select_tag_columns(["id"], label="ids")
        # A batch reads this join: it must see sync row order (the join waits for all).
        Join()(sums, extra(), label="with_extra").batch(2, label="pairs")
        SemiJoin()(sums, sums.filter(pl.col("total") > 5), label="self_semi")
        # One source read twice by one operator: two edges from one node.
        SemiJoin()(source, source, label="source_semi")
        MergeJoin()(source, source, label="source_merge")
    return pipeline


def source_only(store: Store, fn: dict[str, Any]) -> Built:
    # Compiling keeps only invocations' inputs, so a graph of sources is built by hand.
    return PipelineGraph((SourceNode(numbers(), (), "numbers"), SourceNode(extra(), (), "extra")))


TOPOLOGIES: dict[str, Callable[[Store, dict[str, Any]], Built]] = {
    "linear": linear,
    "operator": operator,
    "diamond": diamond,
    "fan_out": fan_out,
    "source_only": source_only,
}

#: Nodes whose rows may come in another order under the async orchestrator (after a
#: streaming join).
UNORDERED = {"joined", "combine", "combine_async"}


# --------------------------------------------------------------------------- observing
class Counting(Observer):
    """Counts every hook per node (packet ends split by ``cached``)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, ...]] = Counter()

    def on_run_start(self, **kwargs: Any) -> None:
        self.counts["run_start",] += 1

    def on_run_end(self, **kwargs: Any) -> None:
        self.counts["run_end",] += 1

    def on_node_start(self, *, node_label: str, **kwargs: Any) -> None:
        self.counts["node_start", node_label] += 1

    def on_node_end(self, *, node_label: str, **kwargs: Any) -> None:
        self.counts["node_end", node_label] += 1

    def on_packet_start(self, *, node_label: str, **kwargs: Any) -> None:
        self.counts["packet_start", node_label] += 1

    def on_packet_end(self, *, node_label: str, cached: bool, **kwargs: Any) -> None:
        self.counts["packet_end", node_label, str(cached)] += 1

    def on_packet_crash(self, *, node_label: str, **kwargs: Any) -> None:
        self.counts["packet_crash", node_label] += 1


# --------------------------------------------------------------------------- comparing
def rows(table: pa.Table) -> list[str]:
    """The rows of ``table`` as sorted, comparable strings (lists and all)."""
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist())


def stored(store: Store) -> dict[tuple[str, ...], list[str]]:
    """Everything in a store scope except run records, computation times dropped."""
    contents = {}
    for path in store.list():
        if path[-1] == "runs":
            continue
        table = store.scan(path)
        assert table is not None
        drop = [c for c in table.column_names if c == meta_column("computed_at")]
        contents[path] = rows(table.drop_columns(drop))
    return contents


class Outcome:
    """One orchestrator's run of one case."""

    def __init__(self, built: Built, result: OrchestratorResult, observer: Counting) -> None:
        self.nodes = built.graph.nodes if isinstance(built, Pipeline) and built.graph else ()
        if isinstance(built, PipelineGraph):
            self.nodes = built.nodes
        self.result = result
        self.hooks = observer.counts
        self.tables = {
            node.label: node.as_table(system_tags=True, source_info=True) for node in self.nodes
        }


def run_case(store: Store, topology: str, kind: str, orchestrator: str) -> Outcome:
    scope = store.at(orchestrator)
    built = TOPOLOGIES[topology](scope, FUNCTIONS[kind])
    observer = Counting()
    runner = (
        SyncPipelineOrchestrator()
        if orchestrator == "sync"
        else AsyncPipelineOrchestrator(chunk_rows=2, buffer_size=2)
    )
    if isinstance(built, Pipeline):
        result = built.run(orchestrator=runner, observer=observer)
    else:
        result = runner.run(built, observer=observer)
    return Outcome(built, result, observer)


@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_sync_and_async_orchestrators_agree(store: Store, topology: str, kind: str) -> None:
    sync = run_case(store, topology, kind, "sync")
    async_ = run_case(store, topology, kind, "async")

    assert async_.result.counts == sync.result.counts
    assert list(async_.result.counts) == list(sync.result.counts)  # graph order
    assert set(async_.result.node_outputs) == set(sync.result.node_outputs)
    for label, table in sync.tables.items():
        other = async_.tables[label]
        assert other.column_names == table.column_names, label  # system-tag names too
        assert other.schema == table.schema, label
        if label in UNORDERED:
            assert rows(other) == rows(table), label
        else:
            assert other.equals(table), label
        assert async_.result.node_outputs[label].as_table(
            system_tags=True, source_info=True
        ).num_rows == len(table)

    assert stored(store.at("async")) == stored(store.at("sync"))
    assert async_.hooks == sync.hooks


def test_the_matrix_covers_streaming_and_barrier_operators(store: Store) -> None:
    """The cases above run every strategy: per-chunk, build-probe, symmetric join, fixed
    batch and the barrier that guards a batch after a join."""
    from podline.pipeline.streaming import StreamingStrategy, plan_operators

    seen: set[StreamingStrategy] = set()
    for topology in ("operator", "diamond", "fan_out"):
        built = TOPOLOGIES[topology](store, FUNCTIONS["plain"])
        assert isinstance(built, Pipeline)
        assert built.graph is not None
        plans = plan_operators(built.graph)
        seen |= set(plans.values())
        if topology == "fan_out":
            assert plans[id(built.with_extra)] is StreamingStrategy.BARRIER
        if topology == "diamond":
            assert plans[id(built.joined)] is StreamingStrategy.SYMMETRIC_JOIN
    assert seen == set(StreamingStrategy)


@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_tiny_buffers_never_deadlock(store: Store, topology: str) -> None:
    """One-row chunks and one-chunk edges: every sender waits on every full edge."""
    built = TOPOLOGIES[topology](store, FUNCTIONS["plain"])
    graph = built if isinstance(built, PipelineGraph) else built.graph
    assert graph is not None
    orchestrator = AsyncPipelineOrchestrator(chunk_rows=1, buffer_size=1)

    async def bounded() -> OrchestratorResult:
        return await asyncio.wait_for(orchestrator.run_async(graph), timeout=20)

    result = asyncio.run(bounded())
    assert set(result.counts) == {node.label for node in graph}


def test_operators_declare_how_they_stream() -> None:
    from podline.operators import (
        Batch,
        Filter,
        Join,
        MapTags,
        MergeJoin,
        Operator,
        SelectPacketColumns,
        SemiJoin,
        StreamingStrategy,
    )
    from podline.pipeline.streaming import order_sensitive, strategy_for

    declared = {
        (Filter(pl.col("a") > 0), 1): StreamingStrategy.PER_CHUNK,
        (SelectPacketColumns(["a"]), 1): StreamingStrategy.PER_CHUNK,
        (MapTags({"k": "key"}), 1): StreamingStrategy.PER_CHUNK,
        (Join(), 1): StreamingStrategy.PER_CHUNK,
        (Join(), 2): StreamingStrategy.SYMMETRIC_JOIN,
        (Join(), 3): StreamingStrategy.BARRIER,
        (SemiJoin(), 2): StreamingStrategy.BUILD_PROBE,
        (MergeJoin(), 2): StreamingStrategy.BARRIER,
        (Batch(batch_size=3), 1): StreamingStrategy.FIXED_BATCH,
        (Batch(), 1): StreamingStrategy.BARRIER,
    }
    for (operator, inputs), strategy in declared.items():
        assert strategy_for(operator, inputs) is strategy, operator
    assert not order_sensitive(Join())
    assert order_sensitive(Batch(batch_size=3))

    class Mine(Operator):  # an operator of one's own waits for its inputs, unless it says
        pass

    class Streams(Operator):
        order_sensitive = False

        def streaming_strategy(self, inputs: int) -> StreamingStrategy:
            return StreamingStrategy.PER_CHUNK

    assert strategy_for(Mine(), 1) is StreamingStrategy.BARRIER
    assert order_sensitive(Mine())
    assert strategy_for(Streams(), 1) is StreamingStrategy.PER_CHUNK
    assert not order_sensitive(Streams())
    # Anything else (not an operator that says): the barrier, order-sensitive.
    assert strategy_for(object(), 1) is StreamingStrategy.BARRIER
    assert order_sensitive(object())
