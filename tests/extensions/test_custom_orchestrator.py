"""An orchestrator written against the public API only: ``Orchestrator``, ``RunOptions``,
the node protocols and ``OrchestratorResult``. It runs the nodes one after another, keeps
every output in memory, and honours the run's options."""

from __future__ import annotations

import time
import uuid

import pytest

import podline
from podline import function_pod
from podline.executors import Executor
from podline.functions import RowStatus
from podline.nodes import NodeOutput, is_function_node, is_operator_node, is_source_node
from podline.pipeline import (
    NodeCounts,
    NoOpObserver,
    ObserverProtocol,
    Orchestrator,
    OrchestratorResult,
    Pipeline,
    PipelineGraph,
    RunOptions,
)
from podline.stores import MemoryStore
from podline.streams import TableStream

CALLS: list[int] = []


@function_pod("doubled", live_output=False)
def double(a: int) -> int:
    CALLS.append(a)
    if a == 3:
        raise ValueError("three")
    return 2 * a


class Topological:
    """Runs every node in the graph's order, keeping each output for its consumers."""

    def __init__(self) -> None:
        self.seen: list[RunOptions] = []

    def run(
        self,
        graph: PipelineGraph,
        *,
        observer: ObserverProtocol | None = None,
        materialize_results: bool = True,
        run_id: str | None = None,
        pipeline_uri: str = "",
        executor: Executor | None = None,
        options: RunOptions = RunOptions(),  # noqa: B008 - frozen and immutable
    ) -> OrchestratorResult:
        self.seen.append(options)
        observer = observer or NoOpObserver()
        result = OrchestratorResult(run_id or str(uuid.uuid4()), pipeline_uri, {})
        outputs: dict[int, TableStream] = {}
        started = time.perf_counter()
        observer.on_run_start(run_id=result.run_id, pipeline_uri=pipeline_uri)
        try:
            for node in graph:
                inputs = [NodeOutput(u, outputs[id(u)]) for u in node.upstreams]
                counts = NodeCounts()
                if is_source_node(node):
                    output = node.execute()
                elif is_function_node(node):
                    output = node.execute(
                        inputs[0],
                        error_policy=options.error_policy or "continue",
                        executor=executor,
                        recompute=node.label in options.recompute,
                    )
                    counts.computed = node.counts[RowStatus.COMPUTED]
                    counts.failed = node.counts[RowStatus.FAILED]
                else:
                    assert is_operator_node(node)
                    output = node.execute(*inputs)
                counts.rows = len(output)
                outputs[id(node)] = output
                result.counts[node.label] = counts
                if materialize_results:
                    result.node_outputs[node.label] = output
        finally:
            result.seconds = time.perf_counter() - started
            observer.on_run_end(run_id=result.run_id)
        return result


def build() -> Pipeline:
    rows = [{"id": i, "a": i} for i in range(5)]
    with Pipeline("custom", MemoryStore()) as pipeline:
        double.pod(podline.DictSource(rows, tag_columns=["id"]))
    return pipeline


def test_a_custom_orchestrator_runs_a_pipeline() -> None:
    CALLS.clear()
    orchestrator = Topological()
    assert isinstance(orchestrator, Orchestrator)
    pipeline = build()
    result = pipeline.run(orchestrator)
    assert (result.counts["double"].computed, result.counts["double"].failed) == (4, 1)
    assert pipeline.double.as_table().column("doubled").to_pylist() == [0, 2, 4, 8]
    assert orchestrator.seen == [RunOptions()]
    # The run's options reach it; the object itself is never changed.
    with pytest.raises(podline.FunctionCallError, match="three"):
        build().run(orchestrator, error_policy="fail_fast")
    assert orchestrator.seen[-1].error_policy == "fail_fast"
    build().run(orchestrator, recompute="double")
    assert orchestrator.seen[-1].recompute == frozenset({"double"})


def test_anything_else_is_refused() -> None:
    class NotOne:
        pass

    with pytest.raises(podline.errors.ConfigurationError, match="an Orchestrator"):
        build().run(NotOne())  # type: ignore[arg-type]
