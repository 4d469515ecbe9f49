"""The async orchestrator: contract shared with the sync one (error policies, B14-B16,
rejected graphs), concurrency limits, hooks that never overlap, running inside an event
loop, streaming operators and cancellation. Results equal to the sync orchestrator's are
checked case by case in ``test_parity``.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest

import podline
from podline import function_pod
from podline.executors import LocalExecutor, ThreadExecutor
from podline.executors.base import DEFAULT_POLICY
from podline.nodes import SourceNode
from podline.operators import SemiJoin
from podline.pipeline import (
    AsyncPipelineOrchestrator,
    Observer,
    Pipeline,
    PipelineGraph,
    SyncPipelineOrchestrator,
)
from podline.stores import Store

# --------------------------------------------------------------------------- functions
IN_FLIGHT = {"now": 0, "most": 0}
CALLS: list[int] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    IN_FLIGHT.update(now=0, most=0)
    CALLS.clear()


@function_pod("y", live_output=False)
def fragile(a: int) -> int:
    if a == 1:
        raise ValueError("a == 1")
    return a


@function_pod("y", live_output=False)
async def tracked(a: int) -> int:
    # Every call of one node runs on one event loop: no lock needed.
    IN_FLIGHT["now"] += 1
    IN_FLIGHT["most"] = max(IN_FLIGHT["most"], IN_FLIGHT["now"])
    await asyncio.sleep(0.005)
    IN_FLIGHT["now"] -= 1
    return a


_THREADS_LOCK = threading.Lock()


@function_pod("y", live_output=False)
def tracked_sync(a: int) -> int:
    with _THREADS_LOCK:
        IN_FLIGHT["now"] += 1
        IN_FLIGHT["most"] = max(IN_FLIGHT["most"], IN_FLIGHT["now"])
    time.sleep(0.005)
    with _THREADS_LOCK:
        IN_FLIGHT["now"] -= 1
    return a


@function_pod("y", live_output=False)
async def slow_square(a: int) -> int:
    await asyncio.sleep(0.01)
    CALLS.append(a)
    return a * a


@function_pod("w", live_output=False)
async def slowish(a: int) -> int:
    await asyncio.sleep(0.005)
    return a


def numbers(n: int = 3, label: str = "numbers") -> podline.Source:
    rows = [{"id": i, "a": i, "b": i} for i in range(n)]
    return podline.DictSource(rows, tag_columns=["id"], label=label)


class Spy(Observer):
    """Records every hook as a tuple (and when each happened)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.times: dict[tuple[Any, ...], float] = {}
        self.ends = 0

    def _add(self, *event: Any) -> None:
        self.events.append(event)
        self.times.setdefault(event, time.perf_counter())

    def on_run_start(self, **kwargs: Any) -> None:
        self._add("run_start")

    def on_run_end(self, **kwargs: Any) -> None:
        self._add("run_end")

    def on_node_start(self, *, node_label: str, **kwargs: Any) -> None:
        self._add("node_start", node_label)

    def on_node_end(self, *, node_label: str, **kwargs: Any) -> None:
        self._add("node_end", node_label)

    def on_packet_end(self, *, node_label: str, cached: bool, **kwargs: Any) -> None:
        self.ends += 1
        self._add("packet_end", node_label, cached)

    def on_packet_crash(self, *, node_label: str, error: BaseException, **kwargs: Any) -> None:
        self._add("packet_crash", node_label, type(error).__name__)

    def count(self, name: str, label: str | None = None) -> int:
        return sum(1 for e in self.events if e[0] == name and (label is None or e[1] == label))


# --------------------------------------------------------------------------- the contract
def test_orchestrator_shorthand_and_validation(store: Store) -> None:
    with Pipeline("short", store, observe=False) as pipeline:
        fragile.pod(numbers())
    result = pipeline.run(orchestrator="async")
    assert result.counts["fragile"].computed == 2
    with pytest.raises(ValueError, match=r"'sync', 'async' or an Orchestrator .* got 'parallel'"):
        pipeline.run(orchestrator="parallel")  # type: ignore[arg-type]
    for bad in ({"error_policy": "sometimes"}, {"buffer_size": 0}, {"max_concurrency": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            AsyncPipelineOrchestrator(**bad)  # type: ignore[arg-type]
    pipeline.fragile.max_concurrency = 0
    with pytest.raises(ValueError, match="max_concurrency of node 'fragile'"):
        pipeline.run(orchestrator="async")


def test_error_policy_continue_skips_and_finishes(store: Store) -> None:
    with Pipeline("errors", store, observe=False) as pipeline:
        fragile.pod(numbers())
    spy = Spy()
    result = pipeline.run(orchestrator="async", observer=spy)
    assert result.counts["fragile"].failed == 1
    assert pipeline.fragile.as_table().column("y").to_pylist() == [0, 2]
    assert spy.count("packet_crash") == 1
    assert spy.events[-1] == ("run_end",)


def test_error_policy_fail_fast_raises_and_cancels_siblings(store: Store) -> None:
    with Pipeline("fail_fast", store, observe=False) as pipeline:
        fragile.pod(numbers())
        slow_square.pod(numbers(500, label="many"))  # 2.5 s at 2 calls in flight
    spy = Spy()
    orchestrator = AsyncPipelineOrchestrator(error_policy="fail_fast", max_concurrency=2)
    started = time.perf_counter()
    with pytest.raises(podline.FunctionCallError, match="a == 1"):
        pipeline.run(orchestrator=orchestrator, observer=spy)
    assert time.perf_counter() - started < 1.5
    assert len(CALLS) < 500
    # B16: the run still ends; the failing node and its cancelled sibling never do.
    assert spy.events[-1] == ("run_end",)
    assert ("node_end", "fragile") not in spy.events
    assert ("node_end", "slow_square") not in spy.events
    # Pipeline.run's own error_policy reaches the async orchestrator too.
    with pytest.raises(podline.FunctionCallError):
        pipeline.run(orchestrator=AsyncPipelineOrchestrator(), error_policy="fail_fast")


def test_non_commutative_operator_gets_declared_order(store: Store) -> None:
    small = podline.DictSource([{"id": 1, "x": 1}], tag_columns=["id"], label="small")
    big = numbers(label="big")
    with Pipeline("semi", store, observe=False) as pipeline:
        SemiJoin()(big, small, label="big_in_small")
        SemiJoin()(small, big, label="small_in_big")
    pipeline.run(orchestrator="async")
    assert pipeline.big_in_small.as_table().to_pylist() == [{"id": 1, "a": 1, "b": 1}]
    assert pipeline.small_in_big.as_table().column_names == ["id", "x"]


def test_a_terminal_source_finishes() -> None:
    graph = PipelineGraph((SourceNode(numbers(5), (), "numbers"),))
    spy = Spy()
    result = AsyncPipelineOrchestrator(chunk_rows=2, buffer_size=1).run(graph, observer=spy)
    assert result.counts["numbers"].rows == 5
    assert len(result.node_outputs["numbers"]) == 5
    assert spy.events == [
        ("run_start",),
        ("node_start", "numbers"),
        ("node_end", "numbers"),
        ("run_end",),
    ]


def test_cache_hits_fire_hooks(store: Store) -> None:
    with Pipeline("cached", store, observe=False) as pipeline:
        slow_square.pod(numbers(6))
    pipeline.run(orchestrator="async")
    spy = Spy()
    result = pipeline.run(orchestrator="async", observer=spy)
    assert result.counts["slow_square"].cached == 6
    assert spy.count("packet_end") == 6
    assert all(e[2] is True for e in spy.events if e[0] == "packet_end")
    assert len(CALLS) == 6  # the second run computed nothing


def test_function_node_needs_one_upstream(store: Store) -> None:
    with Pipeline("arity", store, observe=False) as pipeline:
        fragile.pod(numbers())
    node = pipeline.fragile
    node.upstreams = (*node.upstreams, *node.upstreams)
    spy = Spy()
    with pytest.raises(ValueError, match="function node 'fragile' needs exactly 1 upstream, has 2"):
        pipeline.run(orchestrator="async", observer=spy)
    assert spy.events == [("run_start",), ("run_end",)]  # rejected before any node ran


def test_unknown_node_type_raises(store: Store) -> None:
    with Pipeline("unknown", store, observe=False) as pipeline:
        fragile.pod(numbers())
    pipeline.fragile.node_type = "mystery"  # type: ignore[misc]
    spy = Spy()
    with pytest.raises(TypeError, match=r"^Unknown node type: 'mystery'"):
        pipeline.run(orchestrator="async", observer=spy)
    assert spy.events[-1] == ("run_end",)


def test_results_not_materialized_but_nodes_keep_outputs(store: Store) -> None:
    with Pipeline("kept", store, observe=False) as pipeline:
        fragile.pod(numbers()).select_tag_columns(["id"], label="ids")
    result = pipeline.run(orchestrator="async", materialize_results=False)
    assert result.node_outputs == {}
    assert result.counts["ids"].rows == 2
    assert pipeline.ids.as_table().column("id").to_pylist() == [0, 2]  # an operator node


def test_default_observers_record_status_and_logs(store: Store) -> None:
    def run(name: str, orchestrator: str) -> tuple[list[str], int]:
        # Scopes of their own: each computes everything (the memo is shared in a scope).
        with Pipeline("observed", store.at(name)) as pipeline:
            fragile.pod(numbers(5))
        pipeline.run(orchestrator=orchestrator)  # type: ignore[arg-type]
        states = sorted(pipeline.status()["state"].to_list())
        return states, pipeline.logs().height

    assert run("observed_async", "async") == run("observed_sync", "sync")


# --------------------------------------------------------------------------- concurrency
def test_max_concurrency_bounds_calls_in_flight(store: Store) -> None:
    with Pipeline("limits", store, observe=False) as pipeline:
        tracked.pod(numbers(40))
    pipeline.run(orchestrator=AsyncPipelineOrchestrator(max_concurrency=5))
    assert 1 < IN_FLIGHT["most"] <= 5


def test_node_max_concurrency_overrides_the_orchestrator(store: Store) -> None:
    with Pipeline("node_limit", store, observe=False) as pipeline:
        tracked.pod(numbers(30))
    pipeline.tracked.max_concurrency = 2
    pipeline.run(orchestrator=AsyncPipelineOrchestrator(max_concurrency=10))
    assert IN_FLIGHT["most"] == 2


def test_async_functions_run_concurrently_by_default(store: Store) -> None:
    with Pipeline("default_limit", store, observe=False) as pipeline:
        tracked.pod(numbers(40))
    pipeline.run(orchestrator="async")
    assert IN_FLIGHT["most"] > 1


def test_plain_functions_use_threads_when_given_a_limit(store: Store) -> None:
    with Pipeline("threads", store, observe=False) as pipeline:
        tracked_sync.pod(numbers(20))
    pipeline.run(orchestrator="async")
    assert IN_FLIGHT["most"] == 1  # no limit set: one call at a time
    IN_FLIGHT.update(now=0, most=0)
    # Another scope of the store: its memo is empty, so every call runs again.
    with Pipeline("threads", store.at("again"), observe=False) as again:
        tracked_sync.pod(numbers(20))
    again.tracked_sync.max_concurrency = 4
    again.run(orchestrator="async")
    assert 1 < IN_FLIGHT["most"] <= 4


def test_a_pods_own_executor_wins_over_the_default(store: Store) -> None:
    with Pipeline("pod_executor", store, observe=False) as pipeline:
        tracked.with_options(executor=ThreadExecutor(3)).pod(numbers(30))
    pipeline.run(orchestrator=AsyncPipelineOrchestrator(max_concurrency=10))
    assert IN_FLIGHT["most"] == 3


def test_the_runs_executor_is_used(store: Store) -> None:
    class Counting(LocalExecutor):
        calls = 0

        def execute(self, fn: Any, arguments: Any, *, policy: Any = DEFAULT_POLICY) -> Any:
            Counting.calls += len(arguments)
            return super().execute(fn, arguments, policy=policy)

    with Pipeline("executor", store, observe=False) as pipeline:
        fragile.pod(numbers(5))
    pipeline.run(orchestrator="async", executor=Counting())
    assert Counting.calls == 5


class Exclusive(Observer):
    """Fails the test if two hooks ever run at the same time."""

    def __init__(self) -> None:
        self.inside = False
        self.overlaps = 0
        self.calls = 0

    def _enter(self) -> None:
        self.calls += 1
        if self.inside:
            self.overlaps += 1
        self.inside = True
        time.sleep(0.002)
        self.inside = False

    def on_node_start(self, **kwargs: Any) -> None:
        self._enter()

    def on_node_end(self, **kwargs: Any) -> None:
        self._enter()

    def on_packets_start(self, **kwargs: Any) -> None:
        self._enter()

    def on_packets_end(self, **kwargs: Any) -> None:
        self._enter()


def test_hooks_never_run_concurrently(store: Store) -> None:
    with Pipeline("exclusive", store, observe=False) as pipeline:
        tracked.pod(numbers(40))
        slowish.pod(numbers(40, label="more"))
        tracked_sync.pod(numbers(40, label="others"))
    observer = Exclusive()
    pipeline.run(orchestrator=AsyncPipelineOrchestrator(chunk_rows=4), observer=observer)
    assert observer.calls > 60
    assert observer.overlaps == 0


# --------------------------------------------------------------------------- event loops
def test_run_inside_a_running_event_loop(store: Store) -> None:
    with Pipeline("looped", store, observe=False) as pipeline:
        fragile.pod(numbers())

    async def notebook_cell() -> int:
        # What Jupyter does: synchronous code called while a loop runs.
        result = pipeline.run(orchestrator="async")
        return result.counts["fragile"].rows

    assert asyncio.run(notebook_cell()) == 2

    async def awaiting() -> int:
        assert pipeline.graph is not None
        result = await AsyncPipelineOrchestrator().run_async(pipeline.graph)
        return result.counts["fragile"].cached

    assert asyncio.run(awaiting()) == 2


# --------------------------------------------------------------------------- streaming
def test_operators_stream_before_their_input_ends(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Pipeline("streaming", store, observe=False) as pipeline:
        values = slowish.pod(numbers(60))
        values.filter(pl.col("w") >= 0, label="kept")
        values.batch(5, label="fives")
    seen: dict[str, list[tuple[float, int]]] = {"kept": [], "fives": []}
    for label in seen:
        producer = getattr(pipeline, label).producer
        original = producer.process

        def spying(*inputs: Any, _label: str = label, _run: Any = original) -> Any:
            seen[_label].append((time.perf_counter(), len(inputs[0])))
            return _run(*inputs)

        monkeypatch.setattr(producer, "process", spying)
    spy = Spy()
    orchestrator = AsyncPipelineOrchestrator(chunk_rows=5, max_concurrency=5)
    pipeline.run(orchestrator=orchestrator, observer=spy)
    finished = spy.times["node_end", "slowish"]
    assert seen["kept"][0][0] < finished
    assert seen["fives"][0] < (finished, 5)  # a full batch, before its input ended
    assert len(seen["fives"]) > 1
    assert pipeline.fives.as_table().num_rows == 12


# --------------------------------------------------------------------------- cancellation
def test_cancelling_a_run_stops_it_and_keeps_what_was_stored(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    n = 2000  # 1.25 s at 16 calls in flight
    with Pipeline("cancelled", store, observe=False) as pipeline:
        slow_square.pod(numbers(n))
    graph = pipeline.graph
    assert graph is not None
    spy = Spy()
    # Default chunks: the node's first piece of input (256 rows) is stored and reported
    # whole; the run is cancelled in the middle of the next, larger one.
    orchestrator = AsyncPipelineOrchestrator(max_concurrency=16)

    async def cancel_midway() -> float:
        task = asyncio.create_task(orchestrator.run_async(graph, observer=spy))
        while not spy.ends or len(CALLS) < spy.ends + 32:  # well into the second piece
            await asyncio.sleep(0.005)
        cancelled = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.perf_counter() - cancelled

    # The call counts below show the run stopped; the time only bounds a hang (generous:
    # 0.4 s failed now and then with the machine's 2 cores shared by 20 busy processes).
    assert asyncio.run(cancel_midway()) < 3
    assert spy.events[-1] == ("run_end",)
    stored = spy.ends
    assert 0 < stored < n / 2
    calls = len(CALLS)
    # Every call that finished was stored and reported before the cancellation propagated;
    # at most the calls in flight then (16) ran without being stored.
    assert stored <= calls <= stored + 16
    time.sleep(0.05)
    assert len(CALLS) == calls  # nothing runs on after the run ended
    assert "never retrieved" not in caplog.text

    result = pipeline.run(orchestrator=AsyncPipelineOrchestrator(max_concurrency=200))
    assert result.counts["slow_square"].cached == stored
    assert result.counts["slow_square"].computed == n - stored


@pytest.mark.usefixtures("python_sigint")
def test_ctrl_c_during_run_cancels_it(store: Store) -> None:
    with Pipeline("interrupted", store, observe=False) as pipeline:
        slow_square.pod(numbers(1000))
    spy = Spy()
    timer = threading.Timer(0.2, signal.raise_signal, (signal.SIGINT,))
    timer.start()
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(orchestrator=AsyncPipelineOrchestrator(max_concurrency=4), observer=spy)
    timer.join()
    assert time.perf_counter() - started < 0.8
    assert spy.events[-1] == ("run_end",)
    assert 0 < len(CALLS) < 1000


def test_ctrl_c_in_a_notebook_cancels_the_run(
    store: Store, ctrl_c_in_a_notebook: Callable[..., float]
) -> None:
    """In Jupyter, ``run()`` runs beside the kernel's loop; the kernel turns Ctrl-C into a
    KeyboardInterrupt in the main thread, which must cancel the run, not abandon it."""
    with Pipeline("notebook", store, observe=False) as pipeline:
        slow_square.pod(numbers(1000))
    spy = Spy()

    async def cell() -> None:
        pipeline.run(orchestrator=AsyncPipelineOrchestrator(max_concurrency=4), observer=spy)

    assert ctrl_c_in_a_notebook(cell, 0.2) < 0.8
    assert spy.events[-1] == ("run_end",)
    calls = len(CALLS)
    assert 0 < calls < 1000
    time.sleep(0.05)
    assert len(CALLS) == calls


def test_both_orchestrators_come_from_the_pipeline_package() -> None:
    import podline.pipeline as package

    assert package.SyncPipelineOrchestrator is SyncPipelineOrchestrator
    assert package.AsyncPipelineOrchestrator is AsyncPipelineOrchestrator
    assert {"AsyncPipelineOrchestrator", "SyncPipelineOrchestrator"} <= set(package.__all__)


@function_pod("total", live_output=False)
def _r70_add(a: int, c: int) -> int:
    return a + c


@pytest.mark.parametrize("backend", ["memory", "delta"])
@pytest.mark.parametrize("shape", ["linear", "diamond"])
def test_sync_and_async_record_the_same_outputs(shape: str, backend: str, tmp_path: Any) -> None:
    def build(store: Store) -> Pipeline:
        left = podline.DictSource(
            [{"id": i, "a": i, "c": 10 * i} for i in range(5)], tag_columns=["id"], label="left"
        )
        right = podline.DictSource(
            [{"id": i, "c": 100 * i} for i in range(5)], tag_columns=["id"], label="right"
        )
        with Pipeline("r70", store) as pipeline:
            if shape == "linear":
                _r70_add.pod(left)
            else:
                _r70_add.pod(left.select_packet_columns(["a"]).join(right))
        return pipeline

    def recorded(orchestrator: str) -> list[tuple[int, int]]:
        store: Store = (
            podline.stores.MemoryStore()
            if backend == "memory"
            else podline.stores.DeltaStore(tmp_path / orchestrator)
        )
        build(store).run(orchestrator=orchestrator)
        # Read back by a fresh pipeline on the same store: what the store records.
        table = build(store).nodes["_r70_add"].as_table()
        ids, totals = table.column("id").to_pylist(), table.column("total").to_pylist()
        return sorted(zip(ids, totals, strict=True))

    outputs = recorded("sync")
    assert len(outputs) == 5
    assert outputs == recorded("async")
