"""Pipelines end to end: topologies, hooks, caching across runs, error policies, cache modes.

Tests named ``test_R<n>_...`` / ``test_B<n>_...`` cover the requirement or regression case of
that id in shared/reference/seed-requirements.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import podline
from podline import SKIP, function_pod
from podline.errors import PipelineError
from podline.nodes import CacheMode, is_function_node, is_operator_node, is_source_node
from podline.operators import Join, SemiJoin
from podline.pipeline import (
    CompositeObserver,
    NoOpObserver,
    Observer,
    ObserverProtocol,
    Pipeline,
    SyncPipelineOrchestrator,
)
from podline.stores import DeltaStore, Store

CALLS: list[str] = []


@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    CALLS.append(f"add({a},{b})")
    return a + b


@function_pod("doubled", live_output=False)
def double(total: int) -> int:
    CALLS.append(f"double({total})")
    return SKIP if total == 0 else 2 * total


@function_pod("never", live_output=False)
def drop_all(total: int) -> int:
    return SKIP


@function_pod("y", live_output=False)
def fragile(a: int) -> int:
    if a == 1:
        raise ValueError("a == 1")
    return a


class Spy(Observer):
    """Records every hook as a tuple."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_run_start(self, *, run_id: str, pipeline_uri: str, **kwargs: Any) -> None:
        self.events.append(("run_start", pipeline_uri))

    def on_run_end(self, *, run_id: str, **kwargs: Any) -> None:
        self.events.append(("run_end",))

    def on_node_start(self, *, node_label: str, **kwargs: Any) -> None:
        self.events.append(("node_start", node_label))

    def on_node_end(self, *, node_label: str, **kwargs: Any) -> None:
        self.events.append(("node_end", node_label))

    def on_packet_start(self, *, node_label: str, tag: podline.Tag, **kwargs: Any) -> None:
        self.events.append(("packet_start", node_label, tag.as_dict()))

    def on_packet_end(self, *, node_label: str, cached: bool, **kwargs: Any) -> None:
        self.events.append(("packet_end", node_label, cached))

    def on_packet_crash(self, *, node_label: str, error: BaseException, **kwargs: Any) -> None:
        self.events.append(("packet_crash", node_label, type(error).__name__))

    def count(self, name: str, label: str | None = None) -> int:
        return sum(1 for e in self.events if e[0] == name and (label is None or e[1] == label))


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def numbers(n: int = 3, label: str = "numbers") -> podline.Source:
    rows = [{"id": i, "a": i, "b": i} for i in range(n)]
    return podline.DictSource(rows, tag_columns=["id"], label=label)


def linear(store: Store) -> Pipeline:
    with Pipeline("linear", store) as pipeline:
        double.pod(add.pod(numbers()))
    return pipeline


# --------------------------------------------------------------------------- topologies


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "it is empty"),
        ("a/b", "segments may not contain '/' or NUL, nor be '.' or '..'"),
        ("..", "segments may not contain '/' or NUL, nor be '.' or '..'"),
        (".", "segments may not contain '/' or NUL, nor be '.' or '..'"),
        ("a\x00b", "segments may not contain '/' or NUL, nor be '.' or '..'"),
    ],
)
def test_a_name_no_store_path_can_hold_is_refused_at_once(
    store: Store, name: str, problem: str
) -> None:
    """The name is a segment of the pipeline's store paths: one they cannot hold is refused
    when the pipeline is made, not when its block ends."""
    with pytest.raises(PipelineError) as raised:
        Pipeline(name, store=store)
    assert str(raised.value) == f"invalid pipeline name {name!r}: {problem}"


def test_odd_names_a_path_can_hold_are_taken(store: Store) -> None:
    for name in ("...", " spaced ", "a.b", "naïve:?*\\"):
        with Pipeline(name, store) as pipeline:
            double.pod(add.pod(numbers()))
        counts = pipeline.run().counts["double"]
        assert (counts.rows, counts.skipped) == (2, 1)  # double skips a total of 0
        assert pipeline.runs().height == 1  # a row per run


def test_a_store_is_named_by_its_path_or_url(tmp_path: Path) -> None:
    """``Pipeline(name, "dir")`` opens the store there, as ``open_store`` does (a user test
    found an ``AttributeError`` deep inside instead)."""
    for store in (str(tmp_path / "a"), tmp_path / "b", f"file://{tmp_path / 'c'}"):
        with Pipeline("named", store, result_store=str(tmp_path / "results")) as pipeline:
            double.pod(add.pod(numbers()))
        assert isinstance(pipeline.store, DeltaStore)
        assert pipeline.run().counts["add"].rows == 3
        assert list((tmp_path / "results").glob("results/functions/*"))


def test_linear(store: Store) -> None:
    pipeline = linear(store)
    result = pipeline.run()
    assert pipeline.double.as_table().to_pylist() == [
        {"id": 1, "doubled": 4},
        {"id": 2, "doubled": 8},
    ]
    assert result.counts["add"].computed == 3
    assert result.counts["double"].skipped == 1


def test_operator_and_diamond(store: Store) -> None:
    left = numbers(label="left")
    right = podline.DictSource(
        [{"id": i, "c": 10 * i} for i in range(3)], tag_columns=["id"], label="right"
    )
    with Pipeline("diamond", store) as pipeline:
        joined = Join()(left, right)

        @function_pod("z", live_output=False)
        def combine(a: int, c: int) -> int:
            return a + c

        combine.pod(joined)
    pipeline.run()
    assert [n.node_type for n in pipeline.graph or []] == [
        "source",
        "source",
        "operator",
        "function",
    ]
    assert pipeline.combine.as_table().column("z").to_pylist() == [0, 11, 22]


def test_fan_out(store: Store) -> None:
    with Pipeline("fan", store) as pipeline:
        sums = add.pod(numbers())
        double.pod(sums)
        sums.select_tag_columns(["id"], label="ids")
    pipeline.run()
    assert len(pipeline.ids) == 3
    assert len(pipeline.double) == 2


def test_source_only(store: Store) -> None:
    with Pipeline("sources", store) as pipeline:
        pass
    result = pipeline.run()
    assert result.counts == {}
    assert pipeline.uri == "sources@"


# --------------------------------------------------------------------------- requirements


def test_hook_order(store: Store) -> None:
    with Pipeline("order", store) as pipeline:
        add.pod(numbers(1))
    spy = Spy()
    pipeline.run(observer=spy)
    assert spy.events == [
        ("run_start", pipeline.uri),
        ("node_start", "numbers"),
        ("node_end", "numbers"),
        ("node_start", "add"),
        ("packet_start", "add", {"id": 0}),
        ("packet_end", "add", False),
        ("node_end", "add"),
        ("run_end",),
    ]


def test_repeated_runs_are_cached_and_add_no_rows(store: Store) -> None:
    pipeline = linear(store)
    pipeline.run()
    first = pipeline.double.as_table()
    CALLS.clear()
    spy = Spy()
    result = pipeline.run(observer=spy)
    assert CALLS == []
    assert pipeline.double.as_table().equals(first)
    assert result.counts["add"].cached == 3
    assert spy.count("packet_end") == 6
    assert all(e[2] is True for e in spy.events if e[0] == "packet_end")


def test_skipped_packets_are_remembered(store: Store) -> None:
    pipeline = linear(store)
    pipeline.run()
    CALLS.clear()
    result = pipeline.run()
    assert not any(call.startswith("double") for call in CALLS)
    assert result.counts["double"].skipped == 1
    assert result.counts["double"].computed == 0


def test_empty_upstream_gives_typed_empty_downstream(store: Store) -> None:
    with Pipeline("empty", store) as pipeline:
        none_left = drop_all.pod(add.pod(numbers()))
        none_left.select_packet_columns(["never"], label="after")
    pipeline.run()
    table = pipeline.after.as_table()
    assert table.num_rows == 0
    assert table.schema.field("never").type == pa.int64()


def test_materialize_results(store: Store) -> None:
    pipeline = linear(store)
    kept = pipeline.run()
    assert set(kept.node_outputs) == {"numbers", "add", "double"}
    dropped = pipeline.run(materialize_results=False)
    assert dropped.node_outputs == {}
    # Nodes keep their own outputs either way (R17).
    assert len(pipeline.double) == 2


def test_operator_inputs_in_declared_order(store: Store) -> None:
    small = podline.DictSource([{"id": 1, "x": 1}], tag_columns=["id"], label="small")
    big = numbers(label="big")
    with Pipeline("semi", store) as pipeline:
        SemiJoin()(big, small, label="big_in_small")
        SemiJoin()(small, big, label="small_in_big")
    pipeline.run()
    assert pipeline.big_in_small.as_table().column_names == ["id", "a", "b"]
    assert pipeline.small_in_big.as_table().column_names == ["id", "x"]


def test_function_node_needs_one_upstream(store: Store) -> None:
    pipeline = linear(store)
    assert pipeline.graph is not None
    node = pipeline.add
    node.upstreams = (*node.upstreams, *node.upstreams)
    with pytest.raises(ValueError, match="exactly 1 upstream, has 2"):
        pipeline.run()


def test_unknown_node_type_raises(store: Store) -> None:
    pipeline = linear(store)
    assert pipeline.graph is not None
    pipeline.add.node_type = "mystery"  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"^Unknown node type: 'mystery'"):
        pipeline.run()


def test_type_guards_use_node_type(store: Store) -> None:
    pipeline = linear(store)
    source, function = pipeline.numbers, pipeline.add
    assert is_source_node(source) is True
    assert is_function_node(source) is False
    assert is_function_node(function) is True
    assert is_operator_node(function) is False


def test_error_policy_continue_and_fail_fast(store: Store) -> None:
    with Pipeline("errors", store) as pipeline:
        fragile.pod(numbers())
    spy = Spy()
    result = pipeline.run(observer=spy)
    assert result.counts["fragile"].failed == 1
    assert pipeline.fragile.as_table().column("y").to_pylist() == [0, 2]
    assert spy.count("packet_crash") == 1
    spy = Spy()
    with pytest.raises(podline.FunctionCallError, match="a == 1"):
        pipeline.run(error_policy="fail_fast", observer=spy)
    # B16: the run still ends.
    assert spy.events[-1] == ("run_end",)
    assert ("node_end", "fragile") not in spy.events


def test_passive_reads_never_compute(store: Store) -> None:
    pipeline = linear(store)
    table = pipeline.double.as_table()
    assert table.num_rows == 0
    assert table.schema.field("doubled").type == pa.int64()
    assert list(pipeline.add.iter_packets()) == []
    assert CALLS == []


def test_source_nodes_are_not_cached_by_iteration(store: Store) -> None:
    pipeline = linear(store)
    node = pipeline.numbers
    assert len(list(node.iter_packets())) == 3
    assert not node.has_output


def test_identical_invocations_merge_and_labels_are_numbered(store: Store) -> None:
    src = numbers()
    with Pipeline("merge", store) as pipeline:
        add.pod(src)
        add.pod(src)
        add.pod(numbers(2))
    assert list(pipeline.nodes) == ["numbers", "add", "numbers_1", "add_1"]


def test_uri_is_deterministic_and_follows_the_graph(store: Store) -> None:
    assert linear(store).uri == linear(store).uri
    with Pipeline("linear", store) as other:
        add.pod(numbers())
    assert other.uri != linear(store).uri
    assert linear(store).uri.startswith("linear@")


@pytest.mark.parametrize("mode", list(CacheMode))
def test_operator_cache_modes(store: Store, mode: CacheMode) -> None:
    def build() -> Pipeline:
        with Pipeline("modes", store, cache_modes={"ids": mode}) as pipeline:
            add.pod(numbers()).select_tag_columns(["id"], label="ids")
        return pipeline

    pipeline = build()
    pipeline.run()
    stored = pipeline.ids.store.scan("rows") if pipeline.ids.store else None
    if mode is CacheMode.LOG:
        assert stored is not None
        assert stored.num_rows == 3
    else:
        assert stored is None
    rows = len(pipeline.ids)
    assert rows == (0 if mode is CacheMode.REPLAY else 3)
    # A second run never duplicates logged rows.
    build().run()
    again = pipeline.ids.store.scan("rows") if pipeline.ids.store else None
    assert (again.num_rows if again is not None else 0) == (3 if mode is CacheMode.LOG else 0)


def test_run_records_are_persisted(store: Store) -> None:
    pipeline = linear(store)
    result = pipeline.run()
    runs = store.scan(("pipelines", "linear", "runs"), where={"run_id": result.run_id})
    assert runs is not None
    by_node = {r["node"]: r for r in runs.to_pylist()}
    assert by_node["add"]["computed"] == 3
    assert by_node["double"]["skipped"] == 1
    assert by_node["add"]["pipeline_uri"] == pipeline.uri


def test_observers_compose_and_no_op_satisfies_the_protocol() -> None:
    assert isinstance(NoOpObserver(), ObserverProtocol)
    first, second = Spy(), Spy()
    both = CompositeObserver(first, second)
    both.on_node_start(node_label="n", node_hash="h", tag_schema=podline.Schema({}))
    assert first.events == second.events == [("node_start", "n")]
    assert isinstance(both.contextualize("a", "b"), CompositeObserver)


def test_orchestrator_validates_error_policy() -> None:
    with pytest.raises(ValueError, match="error_policy"):
        SyncPipelineOrchestrator("sometimes")  # type: ignore[arg-type]


def test_run_summary_reads_well(store: Store) -> None:
    result = linear(store).run()
    text = str(result)
    assert text.splitlines()[0].startswith(f"run {result.run_id} of linear@")
    assert "computed" in text.splitlines()[1]
    double_line = next(line for line in text.splitlines() if line.strip().startswith("double"))
    assert double_line.split()[1:] == ["2", "0", "1", "0", "2"]
    assert "<table>" in result._repr_html_()
