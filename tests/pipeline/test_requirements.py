"""Named requirement cases not covered elsewhere: orchestrator core, buffers, observers, node
protocols, persistence, cache modes, identity, ``Pipeline.run`` and the later evolution items.

Tests named ``test_R<n>_...`` / ``test_B<n>_...`` / ``test_c<n>_...`` cover the requirement,
regression case or evolution item (section (c)) of that id in
shared/reference/seed-requirements.md. Where podline departs from the reference on purpose
(docs/decisions.md, docs/pipelines.md), the test checks podline's behaviour and its docstring
says so.
"""

from __future__ import annotations

import inspect
import re
import uuid
from typing import Any, ClassVar

import pyarrow as pa
import pytest

import podline
from podline import SKIP, function_pod
from podline.columns import is_system_tag, source_info_column
from podline.errors import InputValidationError, OperatorError
from podline.functions import FunctionPod
from podline.nodes import (
    CacheMode,
    FunctionNode,
    FunctionNodeProtocol,
    Node,
    NodeOutput,
    OperatorNode,
    OperatorNodeProtocol,
    SourceNode,
    SourceNodeProtocol,
)
from podline.operators import Join
from podline.pipeline import (
    CompositeObserver,
    NoOpObserver,
    Observer,
    ObserverProtocol,
    OrchestratorResult,
    Pipeline,
    PipelineGraph,
    RunOptions,
    SyncPipelineOrchestrator,
)
from podline.stores import DeltaStore, Store
from podline.streams import TableStream, tracking

CALLS: list[str] = []


@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    CALLS.append(f"add({a},{b})")
    return a + b


@function_pod("doubled", live_output=False)
def double(total: int) -> int:
    CALLS.append(f"double({total})")
    return SKIP if total == 0 else 2 * total


@function_pod("y", live_output=False)
def fragile(a: int) -> int:
    CALLS.append(f"fragile({a})")
    if a == 1:
        raise ValueError("a == 1")
    return a


class Spy(Observer):
    """Records every hook as a tuple."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_run_start(self, *, run_id: str, pipeline_uri: str, **kwargs: Any) -> None:
        self.events.append(("run_start", run_id, pipeline_uri))

    def on_run_end(self, *, run_id: str, **kwargs: Any) -> None:
        self.events.append(("run_end", run_id))

    def on_node_start(self, *, node_label: str, **kwargs: Any) -> None:
        self.events.append(("node_start", node_label))

    def on_node_end(self, *, node_label: str, **kwargs: Any) -> None:
        self.events.append(("node_end", node_label))

    def on_packet_start(self, *, node_label: str, tag: podline.Tag, **kwargs: Any) -> None:
        self.events.append(("packet_start", node_label, tag["id"]))

    def on_packet_end(
        self,
        *,
        node_label: str,
        tag: podline.Tag,
        output_packet: podline.Packet | None,
        cached: bool,
        **kwargs: Any,
    ) -> None:
        out = None if output_packet is None else output_packet.as_dict()
        self.events.append(("packet_end", node_label, tag["id"], out, cached))

    def on_packet_crash(
        self, *, node_label: str, tag: podline.Tag, error: BaseException, **kwargs: Any
    ) -> None:
        self.events.append(("packet_crash", node_label, tag["id"], error))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] == name]


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def numbers(n: int = 3, label: str = "numbers") -> podline.Source:
    rows = [{"id": i, "a": i, "b": i} for i in range(n)]
    return podline.DictSource(rows, tag_columns=["id"], label=label)


def linear(store: Store, name: str = "linear", n: int = 3) -> Pipeline:
    with Pipeline(name, store) as pipeline:
        double.pod(add.pod(numbers(n)))
    return pipeline


def graph_of(pipeline: Pipeline) -> PipelineGraph:
    assert pipeline.graph is not None
    return pipeline.graph


def source_node(pipeline: Pipeline, label: str = "numbers") -> SourceNode:
    node = pipeline.nodes[label]
    assert isinstance(node, SourceNode)
    return node


def function_node(pipeline: Pipeline, label: str) -> FunctionNode:
    node = pipeline.nodes[label]
    assert isinstance(node, FunctionNode)
    return node


def operator_node(pipeline: Pipeline, label: str) -> OperatorNode:
    node = pipeline.nodes[label]
    assert isinstance(node, OperatorNode)
    return node


def rows_of(source_output: TableStream, rows: list[int]) -> TableStream:
    """Some rows of a node's output, with every hidden column (so entry ids are the same)."""
    table = source_output.as_table(system_tags=True, source_info=True)
    tags, _ = source_output.keys()
    return TableStream(table.take(pa.array(rows, pa.int64())), tags)


def count_process_calls(monkeypatch: pytest.MonkeyPatch, node: OperatorNode) -> list[int]:
    """Count the calls of an operator node's producer (its computation)."""
    calls: list[int] = []
    original = node.producer.process

    def process(*streams: Any) -> TableStream:
        calls.append(len(streams))
        return original(*streams)

    monkeypatch.setattr(node.producer, "process", process)
    return calls


# --------------------------------------------------------------------------- A. core


def test_orchestrator_runs_a_compiled_graph(store: Store) -> None:
    """R1: ``SyncPipelineOrchestrator().run(graph)`` takes the compiled DAG, returns a result."""
    pipeline = linear(store)
    graph = graph_of(pipeline)
    labels = [node.label for node in graph]
    for position, node in enumerate(graph):  # a topological order
        assert all(labels.index(u.label) < position for u in node.upstreams)
    result = SyncPipelineOrchestrator().run(graph)
    assert isinstance(result, OrchestratorResult)
    assert list(result.counts) == labels == ["numbers", "add", "double"]
    assert result.node_outputs["double"].as_table().column("doubled").to_pylist() == [4, 8]
    assert result.counts["add"].computed == 3


def test_downstream_nodes_read_buffers_not_stream_wiring(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R3: a node's input is its upstream's buffer; the recorded wiring only gives topology."""
    pipeline = linear(store)
    source = source_node(pipeline)
    one_row = rows_of(source.execute(), [2])
    monkeypatch.setattr(source, "execute", lambda **kwargs: one_row)
    result = pipeline.run()
    assert CALLS == ["add(2,2)", "double(4)"]  # the wired source has 3 rows; the buffer 1
    assert result.node_outputs["numbers"] is one_row
    assert pipeline.double.as_table().to_pylist() == [{"id": 2, "doubled": 8}]


def test_source_node_output_is_the_materialized_source(store: Store) -> None:
    """R4: a source node's output holds every row of its source, hidden columns included."""
    src = numbers(4)
    with Pipeline("sources", store) as pipeline:
        add.pod(src)
    result = pipeline.run()
    output = result.node_outputs["numbers"]
    assert isinstance(output, TableStream)
    full = {"system_tags": True, "source_info": True}
    assert output.as_table(**full).equals(src.as_table(**full))
    assert pipeline.numbers.has_output


def test_function_node_serves_stored_entries_and_computes_the_rest(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R6: one bulk lookup per execution; stored entries are served, only misses are
    computed, skipped packets are dropped, outputs keep upstream order."""
    pipeline = linear(store, n=4)
    function_node(pipeline, "add").execute(rows_of(source_node(pipeline).execute(), [1, 3]))
    CALLS.clear()
    nodes = [function_node(pipeline, label) for label in ("add", "double")]
    before = [n.store.statistics() for n in nodes]  # type: ignore[union-attr]
    spy = Spy()
    result = pipeline.run(observer=spy)
    used = [n.store.statistics() - b for n, b in zip(nodes, before, strict=True)]  # type: ignore[union-attr]
    # One bulk lookup of its records per function node, never one per row or id.
    assert [(u.count("scan", "records"), u.count("read", "records")) for u in used] == [
        (1, 0),
        (1, 0),
    ]
    assert [c for c in CALLS if c.startswith("add")] == ["add(0,0)", "add(2,2)"]
    ends = [(e[2], e[4]) for e in spy.named("packet_end") if e[1] == "add"]
    assert ends == [(0, False), (1, True), (2, False), (3, True)]
    assert pipeline.add.as_table().column("total").to_pylist() == [0, 2, 4, 6]
    assert pipeline.double.as_table().to_pylist() == [  # total 0 is skipped and dropped
        {"id": 1, "doubled": 4},
        {"id": 2, "doubled": 8},
        {"id": 3, "doubled": 12},
    ]
    assert (result.counts["add"].computed, result.counts["add"].cached) == (2, 2)


def test_operator_node_replays_or_computes(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """R7: REPLAY serves stored rows without computing; otherwise the operator computes."""

    def build(mode: str) -> Pipeline:
        with Pipeline("replay", store, cache_modes={"ids": mode}) as pipeline:
            add.pod(numbers()).select_tag_columns(["id"], label="ids")
        return pipeline

    logged = build("log")
    computed = count_process_calls(monkeypatch, operator_node(logged, "ids"))
    logged.run()
    assert computed == [1]
    replayed = build("replay")
    replays = count_process_calls(monkeypatch, operator_node(replayed, "ids"))
    result = replayed.run()
    assert replays == []
    expected = [{"id": i, "total": 2 * i} for i in range(3)]
    assert result.node_outputs["ids"].as_table().to_pylist() == expected


# --------------------------------------------------------------------------- B. buffers


def test_buffers_carry_system_tags_and_source_info(store: Store) -> None:
    """R10: a buffer is a table stream with tags (system tags included) and packets (source
    info included); its user tag columns are the upstream's."""
    pipeline = linear(store)
    result = pipeline.run()
    for label, packets in (("numbers", ("a", "b")), ("add", ("total",))):
        output = result.node_outputs[label]
        assert output.keys() == (("id",), packets)
        columns = output.as_table(system_tags=True, source_info=True).column_names
        system = [c for c in columns if is_system_tag(c)]
        assert len(system) == 2  # source id and record id of the one source
        assert all(source_info_column(p) in columns for p in packets)
        tags, _ = pipeline.nodes[label].output_schema(system_tags=True)
        assert [c for c in columns if c in tags] == list(tags)


def test_running_does_not_revalidate_inputs(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """R13: inputs are checked when the pipeline is built (podline: ``FunctionPod.check`` at
    ``pod()``); running the compiled graph checks nothing again."""
    checks: list[str] = []
    original = FunctionPod.check

    def check(self: FunctionPod, stream: Any, **kwargs: Any) -> None:
        checks.append(self.label)
        original(self, stream, **kwargs)

    monkeypatch.setattr(FunctionPod, "check", check)
    pipeline = linear(store)
    assert checks == ["add", "double"]
    checks.clear()
    pipeline.run()
    assert checks == []
    assert len(pipeline.double) == 2


# --------------------------------------------------------------------------- C. retention


class BufferWatcher(SyncPipelineOrchestrator):
    """Notes which buffers are alive when each node starts."""

    def __init__(self) -> None:
        super().__init__()
        self.alive: dict[str, list[str]] = {}
        self.labels: dict[int, str] = {}

    def _run_node(
        self, node: Any, buffers: dict[int, TableStream], *args: Any, **kwargs: Any
    ) -> TableStream:
        self.labels[id(node)] = node.label
        self.alive[node.label] = sorted(self.labels[key] for key in buffers)
        return super()._run_node(node, buffers, *args, **kwargs)


def test_buffers_are_freed_once_every_consumer_ran(store: Store) -> None:
    """R15: without materialized results a buffer lives until its last consumer has run."""
    with Pipeline("frontier", store) as pipeline:
        totals = add.pod(numbers())
        double.pod(totals).select_tag_columns(["id"], label="ids")
        totals.select_tag_columns(["id"], label="total_ids")
    order = [node.label for node in graph_of(pipeline)]
    assert order == ["numbers", "add", "double", "ids", "total_ids"]
    watcher = BufferWatcher()
    pipeline.run(watcher, materialize_results=False)
    assert watcher.alive["numbers"] == []
    assert watcher.alive["add"] == ["numbers"]
    assert watcher.alive["double"] == ["add"]  # numbers was freed after its only consumer
    assert watcher.alive["ids"] == ["add", "double"]  # add still has total_ids to feed
    assert "add" in watcher.alive["total_ids"]
    assert not {"numbers", "double"} & set(watcher.alive["total_ids"])  # double fed ids
    kept = BufferWatcher()
    pipeline.run(kept)
    assert kept.alive["total_ids"] == ["add", "double", "ids", "numbers"]


def test_unmaterialized_runs_still_persist_and_keep_node_outputs(store: Store) -> None:
    """R17: ``materialize_results=False`` changes only the returned result: records, memo,
    logged operator rows and the nodes' own outputs are all there."""

    def build() -> Pipeline:
        with Pipeline("lean", store, cache_modes={"ids": "log"}) as pipeline:
            add.pod(numbers()).select_tag_columns(["id"], label="ids")
        return pipeline

    pipeline = build()
    result = pipeline.run(materialize_results=False)
    assert result.node_outputs == {}
    assert result.counts["add"].computed == 3
    records = function_node(pipeline, "add").store
    assert records is not None
    assert records.scan("records").num_rows == 3  # type: ignore[union-attr]
    logged = operator_node(pipeline, "ids").store
    assert logged is not None
    assert logged.scan("rows").num_rows == 3  # type: ignore[union-attr]
    assert len(pipeline.add) == len(pipeline.ids) == 3
    CALLS.clear()
    fresh = build()  # a new pipeline object reads what was persisted
    assert fresh.add.as_table().column("total").to_pylist() == [0, 2, 4]
    assert CALLS == []


# --------------------------------------------------------------------------- D. observers


def test_observer_protocol_and_no_op_hooks() -> None:
    """R20: the observer protocol is runtime-checkable; NoOp accepts every hook with None
    arguments (podline's hooks are keyword-only and carry labels, not nodes)."""
    no_op = NoOpObserver()
    assert isinstance(no_op, ObserverProtocol)
    assert isinstance(Spy(), ObserverProtocol)
    assert not isinstance(object(), ObserverProtocol)

    class Partial:
        def on_node_start(self, **kwargs: Any) -> None: ...

    assert not isinstance(Partial(), ObserverProtocol)
    none: Any = None  # every hook accepts None arguments and does nothing
    no_op.on_run_start(run_id=none, pipeline_uri=none)
    no_op.on_run_end(run_id=none)
    no_op.on_node_start(node_label=none, node_hash=none, tag_schema=none)
    no_op.on_node_end(node_label=none, node_hash=none)
    no_op.on_packet_start(node_label=none, node_hash=none, tag=none, packet=none)
    no_op.on_packet_end(
        node_label=none,
        node_hash=none,
        tag=none,
        input_packet=none,
        output_packet=none,
        cached=False,
    )
    no_op.on_packet_crash(node_label=none, node_hash=none, tag=none, packet=none, error=none)
    assert no_op.create_packet_logger(none, none).record(none) is None
    assert no_op.contextualize("a", "b") is no_op


def test_no_observer_means_a_no_op_observer(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """R21: the observer is injected per run (podline: ``run(observer=...)``, not the
    orchestrator constructor); ``None`` hands nodes a NoOp observer, never ``None``."""
    pipeline = linear(store)
    node = function_node(pipeline, "add")
    seen: list[Any] = []
    original = node.execute

    def execute(stream: Any, **kwargs: Any) -> TableStream:
        seen.append(kwargs["observer"])
        return original(stream, **kwargs)

    monkeypatch.setattr(node, "execute", execute)
    SyncPipelineOrchestrator().run(graph_of(pipeline), observer=None)
    assert len(seen) == 1
    assert isinstance(seen[0], NoOpObserver)
    spy = Spy()
    pipeline.run(SyncPipelineOrchestrator(), observer=spy)
    assert seen[1] is spy  # Observer.contextualize returns the observer itself
    assert len(spy.named("packet_end")) == 6


def test_cached_means_not_computed_in_this_run(store: Store) -> None:
    """R24: podline's documented departure: ``cached=True`` whenever the packet was not
    computed in this run, including a hit in the memo another pipeline filled."""
    first = linear(store, "first")
    spy = Spy()
    first.run(observer=spy)
    assert {e[4] for e in spy.named("packet_end")} == {False}
    second = linear(store, "second")  # no records of its own, same memo
    assert function_node(second, "add").get_cached_results(["x"]) == {}
    CALLS.clear()
    spy = Spy()
    second.run(observer=spy)
    assert CALLS == []
    assert len(spy.named("packet_end")) == 6
    assert {e[4] for e in spy.named("packet_end")} == {True}


# --------------------------------------------------------------------------- E. protocols


def test_node_protocols(store: Store) -> None:
    """R30: three runtime-checkable node protocols with a ``node_type``; podline's surface is
    ``execute`` (no ``store_result``, ``populate_cache`` or ``get_cached_output``)."""
    with Pipeline("protocols", store) as pipeline:
        add.pod(numbers()).select_tag_columns(["id"], label="ids")
    source, function, operator = pipeline.numbers, pipeline.add, pipeline.ids
    assert isinstance(source, SourceNodeProtocol)
    assert isinstance(function, FunctionNodeProtocol)
    assert isinstance(operator, OperatorNodeProtocol)
    assert (source.node_type, function.node_type, operator.node_type) == (
        "source",
        "function",
        "operator",
    )
    for node in (source, function, operator):
        for old in ("store_result", "populate_cache", "get_cached_output", "operator"):
            assert not hasattr(node, old)

    class OldStyle:
        node_type = "operator"
        label = "old"
        upstreams = ()

        def get_cached_output(self) -> None: ...

    assert not isinstance(OldStyle(), OperatorNodeProtocol)


class DuckSource:
    """A source node that is not a ``Node``: only the protocol surface the orchestrator uses."""

    node_type = "source"
    upstreams = ()

    def __init__(self, stream: podline.Source, label: str) -> None:
        self.stream = stream
        self.label = label
        self.identity_path = (label,)
        self.executed = 0

    def content_hash(self) -> Any:
        return self.stream.content_hash()

    def pipeline_hash(self) -> Any:
        return self.stream.pipeline_hash()

    def identity_structure(self) -> Any:
        return self.stream.identity_structure()

    def pipeline_identity_structure(self) -> Any:
        return self.stream.pipeline_identity_structure()

    def output_schema(self, *, system_tags: bool = False) -> Any:
        return self.stream.output_schema(system_tags=system_tags)

    def set_output(self, stream: TableStream) -> None: ...

    def execute(self, **kwargs: Any) -> TableStream:
        self.executed += 1
        table = self.stream.as_table(system_tags=True, source_info=True)
        tags, _ = self.stream.keys()
        return TableStream(table, tags, label=self.label)


def test_orchestrator_needs_only_the_node_protocol(store: Store) -> None:
    """R32: the orchestrator relies on ``node_type``, ``upstreams``, ``label``, hashes and
    ``output_schema`` of nodes, never on their classes."""
    pipeline = linear(store)
    duck = DuckSource(numbers(), "duck")
    assert isinstance(duck, SourceNodeProtocol)
    assert not isinstance(duck, Node)
    node = function_node(pipeline, "add")
    node.upstreams = (duck,)  # type: ignore[assignment]
    result = SyncPipelineOrchestrator().run(PipelineGraph((duck, node)))  # type: ignore[arg-type]
    assert duck.executed == 1
    assert list(result.counts) == ["duck", "add"]
    assert result.node_outputs["add"].as_table().column("total").to_pylist() == [0, 2, 4]


# --------------------------------------------------------------------------- F. FunctionNode


def test_function_node_execute_computes_persists_and_keeps(store: Store) -> None:
    """R33/R34: podline has no ``execute_packet``; ``FunctionNode.execute(stream)`` computes,
    records one entry per input, keeps its output and passes tags through unchanged."""
    pipeline = linear(store, n=4)
    node = function_node(pipeline, "double")
    totals = rows_of(
        function_node(pipeline, "add").execute(source_node(pipeline).execute()), [0, 2]
    )
    output = node.execute(totals)
    assert CALLS[-2:] == ["double(0)", "double(4)"]
    assert output.as_table().to_pylist() == [{"id": 2, "doubled": 8}]  # the skip is dropped
    full = {"system_tags": True}
    tag_names, _ = totals.keys(system_tags=True)
    assert (
        output.as_table(**full)
        .select(list(tag_names))
        .equals(totals.as_table(**full).select(list(tag_names)).take([1]))
    )
    assert node.store is not None
    records = node.store.scan("records")
    assert records is not None
    assert sorted(records.column("id").to_pylist()) == [0, 2]  # the skip is recorded too
    assert node.as_table().equals(output.as_table())  # kept, served without computing
    CALLS.clear()
    # Without stores (no pipeline): the plain pod computes and nothing is written.
    written = store.list()
    bare = FunctionNode(node.stream, node.upstreams, "bare")  # type: ignore[arg-type]
    assert bare.records is None
    assert bare.execute(totals).as_table().to_pylist() == [{"id": 2, "doubled": 8}]
    assert CALLS == ["double(0)", "double(4)"]
    assert store.list() == written


# --------------------------------------------------------------------------- G. persistence


def test_pipelines_on_one_store_share_the_result_memo(store: Store) -> None:
    """R45: podline's memo lives under ``results/`` for every pipeline on the store (the
    reference uses ``<pipeline>/_results``); each pipeline keeps its own records."""
    linear(store, "first").run()
    CALLS.clear()
    second = linear(store, "second")
    result = second.run()
    assert CALLS == []
    assert result.counts["add"].cached == 3
    memo = store.list("results")
    assert {path[:3] for path in memo} == {
        ("results", "functions", "add"),
        ("results", "functions", "double"),
    }
    assert len(memo) == 2  # one table per function, shared by both pipelines
    for name in ("first", "second"):
        mine = store.list(("pipelines", name, "nodes"))
        assert sum(path[-1] == "records" for path in mine) == 2
    add_results = store.scan(next(p for p in memo if p[2] == "add"))
    assert add_results is not None
    assert add_results.num_rows == 3


# --------------------------------------------------------------------------- H. lookups


def test_outputs_are_replaced_never_accumulated(store: Store) -> None:
    """R53: podline's ``get_cached_results`` has no side effect on the node; every
    ``execute`` replaces the kept output (never appends), so repeated work never duplicates."""
    pipeline = linear(store, n=4)
    node = function_node(pipeline, "add")
    source = source_node(pipeline).execute()
    node.execute(rows_of(source, [0, 1]))
    assert node.as_table().column("id").to_pylist() == [0, 1]
    node.execute(source)
    assert node.as_table().column("id").to_pylist() == [0, 1, 2, 3]
    ids = node.entry_ids(source).to_pylist()
    found = node.get_cached_results(ids)
    assert sorted(tag["id"] for tag, _ in found.values()) == [0, 1, 2, 3]
    assert len(node) == 4
    node.execute(rows_of(source, [3]))
    assert node.as_table().column("id").to_pylist() == [3]
    pipeline.run()
    pipeline.run()
    assert node.as_table().column("id").to_pylist() == [0, 1, 2, 3]


# --------------------------------------------------------------------------- I. cache modes


def test_operator_cache_modes(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """R55-R58: OFF (default) computes and stores nothing, LOG computes and appends, REPLAY
    never computes and serves stored rows (none stored: a typed empty output); ``execute``
    keeps its output for reads. podline has no ``get_cached_output``: ``execute`` replays."""
    assert [mode.name for mode in CacheMode] == ["OFF", "LOG", "REPLAY"]

    def build(modes: dict[str, str] | None = None) -> Pipeline:
        with Pipeline("modes", store, cache_modes=modes) as pipeline:
            add.pod(numbers()).select_tag_columns(["id"], label="ids")
        return pipeline

    default = build()
    node = operator_node(default, "ids")
    assert node.cache_mode is CacheMode.OFF
    totals = function_node(default, "add").execute(source_node(default).execute())
    off = node.execute(totals)
    assert len(off) == 3
    assert node.store is not None
    assert node.store.scan("rows") is None  # OFF writes nothing
    assert [tag["id"] for tag, _ in node.iter_packets()] == [0, 1, 2]  # kept for reads

    empty = operator_node(build({"ids": "replay"}), "ids")
    replays = count_process_calls(monkeypatch, empty)
    nothing = empty.execute(totals)
    assert replays == []
    assert len(nothing) == 0
    assert nothing.output_schema() == off.output_schema()  # typed like a computed output

    log = operator_node(build({"SelectTagColumns": "log"}), "ids")  # by operator class
    assert log.cache_mode is CacheMode.LOG
    logs = count_process_calls(monkeypatch, log)
    log.execute(totals)
    log.execute(totals)
    assert logs == [1, 1]  # LOG always computes
    assert log.store is not None
    stored = log.store.scan("rows")
    assert stored is not None
    assert stored.num_rows == 3  # the same rows logged twice are stored once

    replay = operator_node(build({"ids": "replay"}), "ids")
    # Before any run, a REPLAY node's reads serve the stored rows (and compute nothing).
    assert replay.as_table().to_pylist() == off.as_table().to_pylist()
    assert operator_node(build(), "ids").as_table().num_rows == 0  # OFF shows no history
    served = replay.execute(totals)
    assert served.as_table().to_pylist() == off.as_table().to_pylist()
    assert replay.as_table().to_pylist() == off.as_table().to_pylist()
    assert log.store.scan("rows").num_rows == 3  # type: ignore[union-attr]


# --------------------------------------------------------------------------- K. identity


def test_stream_identity_comes_from_the_producer(store: Store) -> None:
    """R60: a node's materialized output (podline: ``NodeOutput``) hashes like the node;
    commutative operators ignore input order; producer-less tables hash by content, and by
    schema for pipeline identity."""
    left = numbers(label="left")
    right = podline.DictSource([{"id": i, "c": i} for i in range(3)], ["id"], label="right")
    forward, backward = Join()(left, right), Join()(right, left)
    assert forward.content_hash() == backward.content_hash()
    assert forward.pipeline_hash() == backward.pipeline_hash()
    with Pipeline("identity", store) as pipeline:
        Join()(right, left, label="joined")
    result = pipeline.run()
    node = pipeline.joined
    wrapped = NodeOutput(node, result.node_outputs["joined"])
    assert wrapped.content_hash() == node.content_hash() == forward.content_hash()
    assert wrapped.pipeline_hash() == node.pipeline_hash() == forward.pipeline_hash()
    table = left.as_table()
    same, other = TableStream(table, ["id"]), TableStream(table.slice(0, 2), ["id"])
    assert same.content_hash() == TableStream(table, ["id"]).content_hash()
    assert same.content_hash() != other.content_hash()
    assert same.pipeline_hash() == other.pipeline_hash()  # same schema


# --------------------------------------------------------------------------- L. Pipeline.run


def test_pipeline_run_signature() -> None:
    """R65: ``Pipeline.run(orchestrator=None, *, observer=None, executor=None,
    error_policy=None, materialize_results=True, run_id=None, timeout=None,
    commit_seconds=None, recompute=False, progress=None)``: every option keyword-only
    (docs/decisions: no config or execution engine)."""
    parameters = inspect.signature(Pipeline.run).parameters
    assert [(p.name, p.default, p.kind.name) for p in list(parameters.values())[1:]] == [
        ("orchestrator", None, "POSITIONAL_OR_KEYWORD"),
        ("observer", None, "KEYWORD_ONLY"),
        ("executor", None, "KEYWORD_ONLY"),
        ("error_policy", None, "KEYWORD_ONLY"),
        ("materialize_results", True, "KEYWORD_ONLY"),
        ("run_id", None, "KEYWORD_ONLY"),
        ("timeout", None, "KEYWORD_ONLY"),
        ("commit_seconds", None, "KEYWORD_ONLY"),
        ("recompute", False, "KEYWORD_ONLY"),
        ("progress", None, "KEYWORD_ONLY"),
    ]


def test_run_compiles_first(store: Store) -> None:
    """R66: ``run()`` compiles a pipeline that has recorded but not compiled."""
    pipeline = Pipeline("uncompiled", store)
    with tracking(pipeline):
        double.pod(add.pod(numbers()))
    assert pipeline.graph is None
    assert CALLS == []
    result = pipeline.run()
    assert pipeline.graph is not None
    assert list(result.counts) == ["numbers", "add", "double"]
    assert pipeline.double.as_table().column("doubled").to_pylist() == [4, 8]


class CountingOrchestrator(SyncPipelineOrchestrator):
    """Remembers every graph it ran, the URI and the options it was given."""

    instances: ClassVar[list[CountingOrchestrator]] = []

    def __init__(self, error_policy: Any = "continue", **options: Any) -> None:
        super().__init__(error_policy, **options)
        self.runs: list[tuple[PipelineGraph, str, RunOptions]] = []
        CountingOrchestrator.instances.append(self)

    def run(self, graph: PipelineGraph, **kwargs: Any) -> OrchestratorResult:
        self.runs.append((graph, kwargs["pipeline_uri"], kwargs["options"]))
        return super().run(graph, **kwargs)


def test_run_uses_the_given_orchestrator_or_a_fresh_default(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R67: a given orchestrator runs the compiled graph, with the options of the call, and is
    left as it was; otherwise every run gets a fresh ``SyncPipelineOrchestrator``."""
    pipeline = linear(store)
    given = CountingOrchestrator()
    pipeline.run(given, error_policy="fail_fast")
    ((graph, uri, options),) = given.runs
    assert (graph, uri, options.error_policy) == (pipeline.graph, pipeline.uri, "fail_fast")
    assert given.error_policy == "continue"  # the run's option did not change the object
    monkeypatch.setattr("podline.pipeline.pipeline.SyncPipelineOrchestrator", CountingOrchestrator)
    CountingOrchestrator.instances.clear()
    pipeline.run()
    pipeline.run(error_policy="fail_fast")
    first, second = CountingOrchestrator.instances
    assert first is not second
    assert [o.error_policy for _, _, o in first.runs + second.runs] == [None, "fail_fast"]


def test_run_flushes_even_when_it_fails(tmp_path: Any) -> None:
    """R67/R47: the store is flushed after the run, also when the run raises."""
    store = DeltaStore(tmp_path / "db", flush_rows=10**9, flush_seconds=None)
    with Pipeline("flush", store) as pipeline:
        fragile.pod(add.pod(numbers(2)), inputs={"a": "total"})  # totals 0 and 2
        fragile.pod(numbers(2), label="fails")  # a == 1 raises
    with pytest.raises(podline.FunctionCallError):
        pipeline.run(error_policy="fail_fast")
    reopened = DeltaStore(tmp_path / "db")
    memo = [p for p in reopened.list("results") if p[2] == "add"]
    assert len(memo) == 1
    assert reopened.scan(memo[0]).num_rows == 2  # type: ignore[union-attr]


def test_default_run_writes_function_results(store: Store) -> None:
    """R68: ``pipeline.run()`` without arguments computes and stores every function result."""

    @function_pod("twice", live_output=False)
    def twice(a: int) -> int:
        return 2 * a

    rows = [{"id": i, "a": v} for i, v in enumerate([1, 2])]
    with Pipeline("doubling", store) as pipeline:
        twice.pod(podline.DictSource(rows, ["id"]))
    pipeline.run()
    node = function_node(pipeline, "twice")
    assert node.store is not None
    records = node.store.scan("records")
    assert records is not None
    assert records.num_rows == 2
    memo = store.scan(next(p for p in store.list("results") if p[2] == "twice"))
    assert memo is not None
    assert sorted(memo.column("twice").to_pylist()) == [2, 4]
    with Pipeline("doubling", store) as fresh:
        twice.pod(podline.DictSource(rows, ["id"]))
    assert fresh.twice.as_table().column("twice").to_pylist() == [2, 4]


# --------------------------------------------------------------------------- (b) regressions


def test_validation_compares_types_whatever_the_column_order() -> None:
    """B3/B10: podline validates when a pod or operator is applied: same names with other
    types are a mismatch, column order never matters, and hidden columns (system tags,
    source info) are ignored alike on a source and on its materialized table."""

    def check(rows: list[dict[str, Any]]) -> str:
        with pytest.raises(InputValidationError) as error:
            add.pod(podline.DictSource(rows, ["id"]))
        return str(error.value)

    forward = check([{"id": 1, "a": "x", "b": 1}])
    backward = check([{"b": 1, "a": "x", "id": 1}])
    assert forward == backward
    assert "mistyped" in forward
    assert "'a'" in forward
    assert "'b'" not in forward
    assert len(add.pod(podline.DictSource([{"b": 1, "a": 2, "id": 1}], ["id"]))) == 1

    ints = podline.DictSource([{"id": 1, "x": 1}], ["id"], label="ints")
    texts = podline.DictSource([{"id": "1", "y": 1}], ["id"], label="texts")
    for inputs in ((ints, texts), (texts, ints)):
        with pytest.raises(OperatorError, match="conflicting types: 'id'"):
            Join()(*inputs)

    source = numbers()
    table = source.as_table(system_tags=True, source_info=True)
    assert any(is_system_tag(c) for c in table.column_names)
    materialized = TableStream(table, ["id"], label=source.label)
    for stream in (source, materialized):
        add.check(stream, strict=True)  # hidden columns are not extra packet columns
    mistyped = podline.DictSource([{"id": 1, "a": "x", "b": 1}], ["id"], label="bad")
    bad_table = mistyped.as_table(system_tags=True, source_info=True)
    messages = []
    for stream in (mistyped, TableStream(bad_table, ["id"], label="bad")):
        with pytest.raises(InputValidationError) as error:
            add.check(stream)
        messages.append(str(error.value))
    assert messages[0] == messages[1]


def test_run_end_fires_whatever_fails(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """B16: ``on_run_end`` fires (with the run's id) when a function, an operator or the
    orchestrator itself raises."""

    def build() -> Pipeline:
        with Pipeline("failing", store) as pipeline:
            fragile.pod(numbers()).select_tag_columns(["id"], label="ids")
        return pipeline

    def failing_run(pipeline: Pipeline, error: type[BaseException], **kwargs: Any) -> Spy:
        spy = Spy()
        with pytest.raises(error):
            pipeline.run(observer=spy, **kwargs)
        assert spy.events[0][0] == "run_start"
        assert spy.events[-1] == ("run_end", spy.events[0][1])
        return spy

    failing_run(build(), podline.FunctionCallError, error_policy="fail_fast")

    operator = build()

    def explode(*streams: Any) -> TableStream:
        raise RuntimeError("operator failed")

    monkeypatch.setattr(operator_node(operator, "ids").producer, "process", explode)
    spy = failing_run(operator, RuntimeError)
    assert ("node_end", "fragile") in spy.events  # the function node finished first
    assert ("node_end", "ids") not in spy.events

    unknown = build()
    unknown.ids.node_type = "mystery"  # type: ignore[misc]
    failing_run(unknown, TypeError)


# --------------------------------------------------------------------------- (c) evolution


def test_nodes_execute_and_the_orchestrator_only_schedules(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """c1: every node's ``execute`` does its own work, once per run, in topological order;
    a source node's ``execute`` materializes and keeps its rows; function nodes fire the
    packet hooks themselves."""
    with Pipeline("scheduled", store) as pipeline:
        double.pod(add.pod(numbers())).select_tag_columns(["id"], label="ids")
    calls: list[str] = []
    for node in graph_of(pipeline):
        original = node.execute

        def execute(*args: Any, _label: str = node.label, _run: Any = original, **kw: Any) -> Any:
            calls.append(_label)
            return _run(*args, **kw)

        monkeypatch.setattr(node, "execute", execute)
    pipeline.run()
    assert calls == ["numbers", "add", "double", "ids"]

    fresh = linear(store, "direct")
    source = source_node(fresh)
    assert not source.has_output
    rows = source.execute()
    assert source.has_output
    assert isinstance(rows, TableStream)
    assert len(rows) == 3
    spy = Spy()
    function_node(fresh, "add").execute(rows, observer=spy)
    assert [e[0] for e in spy.events] == ["packet_start", "packet_end"] * 3


def test_run_ids(store: Store) -> None:
    """c3: a run without an id gets a fresh UUID; a given id is used for the hooks, the
    result and the stored run records."""
    pipeline = linear(store)
    spy = Spy()
    first = pipeline.run(observer=spy)
    assert str(uuid.UUID(first.run_id)) == first.run_id
    assert spy.events[0] == ("run_start", first.run_id, pipeline.uri)
    assert spy.events[-1] == ("run_end", first.run_id)
    second = pipeline.run()
    assert second.run_id != first.run_id
    spy = Spy()
    given = pipeline.run(observer=spy, run_id="nightly-42")
    assert given.run_id == "nightly-42"
    assert spy.events[0][1] == spy.events[-1][1] == "nightly-42"
    runs = store.scan(("pipelines", "linear", "runs"), where={"run_id": "nightly-42"})
    assert runs is not None
    assert sorted(runs.column("node").to_pylist()) == ["add", "double", "numbers"]
    direct = SyncPipelineOrchestrator().run(graph_of(pipeline))
    assert uuid.UUID(direct.run_id).version == 4


class CaptureLogger:
    def __init__(self, sink: list[tuple[int, Any]], tag: podline.Tag) -> None:
        self.sink, self.tag = sink, tag

    def record(self, capture: Any) -> None:
        self.sink.append((self.tag["id"], capture))


class LoggingSpy(Spy):
    def __init__(self) -> None:
        super().__init__()
        self.captures: list[tuple[int, Any]] = []

    def create_packet_logger(self, tag: podline.Tag, packet: podline.Packet) -> Any:
        return CaptureLogger(self.captures, tag)


def test_packet_crashes_and_error_policies(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """c3: ``continue`` (the default) reports a failing packet through ``on_packet_crash``,
    logs a warning, skips it and finishes the node; ``fail_fast`` reports it and raises,
    without ``on_node_end`` (podline's documented choice). Loggers receive each call's
    capture."""

    @function_pod("y", live_output=False)
    def noisy(a: int) -> int:
        print(f"working on {a}")
        if a == 1:
            raise ValueError("a == 1")
        return a

    with Pipeline("crashes", store) as pipeline:
        noisy.pod(numbers())
    spy = LoggingSpy()
    result = pipeline.run(observer=spy)
    assert [e[2] for e in spy.named("packet_start")] == [0, 1, 2]
    assert [e[2] for e in spy.named("packet_end")] == [0, 2]  # the crash does not end
    position = {e[:3]: n for n, e in enumerate(spy.events)}
    for kind, i in (("packet_end", 0), ("packet_crash", 1), ("packet_end", 2)):
        assert position[("packet_start", "noisy", i)] < position[(kind, "noisy", i)]
    (crash,) = spy.named("packet_crash")
    assert isinstance(crash[3], podline.FunctionCallError)
    assert isinstance(crash[3].__cause__, ValueError)
    assert ("node_end", "noisy") in spy.events
    assert result.counts["noisy"].failed == 1
    assert pipeline.noisy.as_table().column("y").to_pylist() == [0, 2]
    assert any("failed and was skipped" in r.getMessage() for r in caplog.records)
    captures = dict(spy.captures)
    assert sorted(captures) == [0, 1, 2]
    assert captures[0].stdout == "working on 0\n"
    assert captures[0].succeeded
    assert captures[1].error_type == "ValueError"

    spy = LoggingSpy()
    with pytest.raises(podline.FunctionCallError, match="a == 1"):
        pipeline.run(observer=spy, error_policy="fail_fast")
    assert [e[2] for e in spy.named("packet_crash")] == [1]
    assert ("node_end", "noisy") not in spy.events
    with pytest.raises(podline.FunctionCallError):
        SyncPipelineOrchestrator("fail_fast").run(graph_of(pipeline))


class ContextSpy(Observer):
    """Counts ``contextualize`` calls; the bound views record which node context saw what."""

    def __init__(self, log: list[tuple[Any, ...]], path: tuple[str, ...] = ()) -> None:
        self.log, self.path = log, path
        self.contextualized: list[tuple[str, ...]] = []

    def contextualize(self, *identity_path: str) -> ContextSpy:
        self.contextualized.append(identity_path)
        return ContextSpy(self.log, identity_path)

    def on_run_start(self, **kwargs: Any) -> None:
        self.log.append((self.path, "run_start", None))

    def on_node_start(self, *, node_label: str, **kwargs: Any) -> None:
        self.log.append((self.path, "node_start", node_label))

    def on_packet_end(self, *, node_label: str, **kwargs: Any) -> None:
        self.log.append((self.path, "packet_end", node_label))


def test_composite_fans_out_and_each_node_gets_its_own_context(store: Store) -> None:
    """c6/c12: a composite hands every hook to each child in order; ``contextualize`` is
    called once per node with the node's identity path, and that node's hooks go through the
    returned view; the node's store scope is named by its label and pipeline hash too (and
    the pod's content hash: records outlive a change of input data)."""
    pipeline = linear(store)
    first_log: list[tuple[Any, ...]] = []
    second_log: list[tuple[Any, ...]] = []
    first, second = ContextSpy(first_log), ContextSpy(second_log)
    plain = Spy()
    pipeline.run(observer=CompositeObserver(first, plain, second))
    paths = {node.label: node.identity_path for node in graph_of(pipeline)}
    assert first.contextualized == second.contextualized == list(paths.values())
    assert first_log == second_log
    assert first_log[0] == ((), "run_start", None)
    for path, hook, label in first_log[1:]:
        assert path == paths[label], hook  # node hooks arrive through the node's own view
    assert [e[2] for e in first_log if e[1] == "packet_end"] == ["add"] * 3 + ["double"] * 3
    assert len(plain.named("packet_end")) == 6
    assert len(plain.named("node_start")) == 3
    for label in ("add", "double"):
        scope = function_node(pipeline, label).store
        assert scope is not None
        node = function_node(pipeline, label)
        expected = (*paths[label][:2], node.pod.content_hash().short(16))
        assert scope.prefix == ("pipelines", "linear", "nodes", *expected)

    class WithLogger(Observer):
        def create_packet_logger(self, tag: podline.Tag, packet: podline.Packet) -> Any:
            return "the logger"

    both = CompositeObserver(NoOpObserver(), WithLogger())
    tag = podline.Tag({"id": 1}, {"id": int})
    packet = podline.Packet({"a": 1}, {"a": int})
    assert both.create_packet_logger(tag, packet) == "the logger"


HEX16 = re.compile(r"[0-9a-f]{16}")


def test_pipeline_uri(store: Store) -> None:
    """c7: ``<name>@<16 hex>``, the same for the same graph whatever the node order, passed
    to ``on_run_start``; it changes with a node or an edge."""

    def diamond(name: str = "uri") -> Pipeline:
        left = numbers(label="left")
        right = podline.DictSource([{"id": i, "c": i} for i in range(3)], ["id"], label="right")
        with Pipeline(name, store) as pipeline:
            add.pod(Join()(left, right, label="joined"))
        return pipeline

    pipeline = diamond()
    name, digest = pipeline.uri.split("@")
    assert name == "uri"
    assert HEX16.fullmatch(digest)
    assert diamond().uri == pipeline.uri
    assert diamond("other").uri == f"other@{digest}"
    spy = Spy()
    result = pipeline.run(observer=spy)
    assert result.pipeline_uri == spy.events[0][2] == pipeline.uri

    graph = graph_of(pipeline)
    nodes = list(graph)
    swapped = PipelineGraph((nodes[1], nodes[0], *nodes[2:]))  # another topological order
    assert swapped.snapshot_hash() == graph.snapshot_hash()

    rewired = diamond()
    joined = rewired.joined
    joined.upstreams = joined.upstreams[:1]  # same nodes, one edge less
    assert PipelineGraph(tuple(graph_of(rewired))).snapshot_hash() != digest

    other_right = podline.DictSource([{"id": i, "c": 10 * i} for i in range(3)], ["id"])
    with Pipeline("uri", store) as changed:  # same shape, one source's data differs
        add.pod(Join()(numbers(label="left"), other_right, label="joined"))
    assert len(graph_of(changed)) == len(graph)
    assert changed.uri != pipeline.uri


def test_reads_never_compute_or_cascade(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """c9: before a run, reading an operator node gives a typed empty table and computes
    nothing upstream; a LOG node does not expose rows logged by earlier runs."""

    def build() -> Pipeline:
        with Pipeline("passive", store, cache_modes={"second": "log"}) as pipeline:
            totals = add.pod(numbers())
            totals.select_tag_columns(["id"], label="first").select_packet_columns(
                ["total"], label="second"
            )
        return pipeline

    pipeline = build()
    first = count_process_calls(monkeypatch, operator_node(pipeline, "first"))
    second = count_process_calls(monkeypatch, operator_node(pipeline, "second"))
    table = pipeline.second.as_table()
    assert table.num_rows == 0
    assert table.schema.field("total").type == pa.int64()
    assert table.column_names == ["id", "total"]
    assert list(pipeline.second.iter_packets()) == []
    assert list(pipeline.first.iter_packets()) == []
    assert len(pipeline.add) == 0
    assert (first, second, CALLS) == ([], [], [])
    assert not any(node.has_output for node in graph_of(pipeline))

    pipeline.run()
    assert (first, second) == ([1], [1])
    assert len(pipeline.second) == 3
    logged = operator_node(pipeline, "second").store
    assert logged is not None
    assert logged.scan("rows") is not None

    again = build()  # rows are logged, but a LOG node's reads show only this run's output
    assert again.second.as_table().num_rows == 0
    assert len(again.add) == 3  # function nodes do serve what the store holds
    assert CALLS == ["add(0,0)", "add(1,1)", "add(2,2)"]


def test_function_node_execute_is_input_driven_and_idempotent(store: Store) -> None:
    """c16: ``FunctionNode.execute`` drives the per-packet loop itself: every packet starts
    before it ends, entries it already handled (skips included) are served, not computed,
    and repeating it never duplicates rows; ``fail_fast`` raises from the node."""
    pipeline = linear(store)
    totals = function_node(pipeline, "add").execute(source_node(pipeline).execute())
    node = function_node(pipeline, "double")
    for expected_cached in (False, True):
        CALLS.clear()
        spy = Spy()
        output = node.execute(totals, observer=spy)
        for i in range(3):
            starts = [n for n, e in enumerate(spy.events) if e[:3] == ("packet_start", "double", i)]
            ends = [n for n, e in enumerate(spy.events) if e[:3] == ("packet_end", "double", i)]
            assert len(starts) == len(ends) == 1
            assert starts[0] < ends[0]
        assert {e[4] for e in spy.named("packet_end")} == {expected_cached}
        if expected_cached:
            assert CALLS == []  # skips are remembered too
        else:
            assert CALLS == ["double(0)", "double(2)", "double(4)"]
        assert output.as_table().column("doubled").to_pylist() == [4, 8]
        assert len(node) == 2

    with Pipeline("strict", store) as failing:
        fragile.pod(numbers())
    fragile_node = function_node(failing, "fragile")
    with pytest.raises(podline.FunctionCallError):
        fragile_node.execute(source_node(failing).execute(), error_policy="fail_fast")
    assert fragile_node.execute(source_node(failing).execute()).as_table().num_rows == 2
