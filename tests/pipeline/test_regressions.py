"""Named requirement and regression cases (ids from shared/reference/seed-requirements.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import podline
from podline import function_pod
from podline.errors import InputValidationError
from podline.operators import Join
from podline.pipeline import Observer, Pipeline
from podline.stores import MemoryStore

CALLS: list[int] = []


@function_pod("y", live_output=False)
def inc(a: int) -> int:
    CALLS.append(a)
    return a + 1


class Counter(Observer):
    def __init__(self) -> None:
        self.starts: dict[str, int] = {}
        self.ends: dict[str, int] = {}
        self.node_starts: list[str] = []
        self.node_ends: list[str] = []

    def on_node_start(self, *, node_label: str, **kwargs: Any) -> None:
        self.node_starts.append(node_label)

    def on_node_end(self, *, node_label: str, **kwargs: Any) -> None:
        self.node_ends.append(node_label)

    def on_packet_start(self, *, node_label: str, **kwargs: Any) -> None:
        self.starts[node_label] = self.starts.get(node_label, 0) + 1

    def on_packet_end(self, *, node_label: str, **kwargs: Any) -> None:
        self.ends[node_label] = self.ends.get(node_label, 0) + 1


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()


def source(n: int = 4, label: str = "src") -> podline.Source:
    return podline.DictSource([{"id": i, "a": i} for i in range(n)], ["id"], label=label)


def test_topological_order_in_a_diamond() -> None:
    left, right = (
        source(label="left"),
        podline.DictSource([{"id": i, "b": i} for i in range(4)], ["id"], label="right"),
    )
    with Pipeline("diamond", MemoryStore()) as pipeline:
        inc.pod(Join()(left, right, label="joined"))
    counter = Counter()
    pipeline.run(observer=counter)
    order = counter.node_starts
    assert order.index("joined") > max(order.index("left"), order.index("right"))
    assert order.index("inc") > order.index("joined")


def test_every_node_once_packet_hooks_once_per_input() -> None:
    with Pipeline("hooks", MemoryStore()) as pipeline:
        inc.pod(source(5)).select_tag_columns(["id"], label="ids")
    counter = Counter()
    pipeline.run(observer=counter)
    assert counter.node_starts == counter.node_ends == ["src", "inc", "ids"]
    assert counter.starts == counter.ends == {"inc": 5}


def test_cache_hits_fire_packet_hooks() -> None:
    store = MemoryStore()
    with Pipeline("hits", store) as pipeline:
        inc.pod(source(3))
    pipeline.run()
    counter = Counter()
    pipeline.run(observer=counter)
    assert counter.starts == counter.ends == {"inc": 3}


def test_reads_after_run_serve_results_without_recomputing() -> None:
    with Pipeline("reads", MemoryStore()) as pipeline:
        inc.pod(source(3))
    pipeline.run()
    CALLS.clear()
    assert pipeline.inc.as_table().column("y").to_pylist() == [1, 2, 3]
    assert [p["y"] for _, p in pipeline.inc.iter_packets()] == [1, 2, 3]
    assert CALLS == []


def test_source_node_iteration_is_lazy() -> None:
    with Pipeline("lazy", MemoryStore()) as pipeline:
        inc.pod(source(2))
    node = pipeline.src
    first = list(node.iter_packets())
    second = list(node.iter_packets())
    assert len(first) == len(second) == 2
    assert not node.has_output


def test_operator_nodes_keep_the_stream_identity() -> None:
    left, right = (
        source(label="left"),
        podline.DictSource([{"id": i, "b": i} for i in range(4)], ["id"], label="right"),
    )
    pull = Join()(left, right)
    with Pipeline("identity", MemoryStore()) as pipeline:
        Join()(left, right, label="joined")
    pipeline.run()
    node = pipeline.joined
    assert node.content_hash() == pull.content_hash()
    assert node.pipeline_hash() == pull.pipeline_hash()
    assert (
        node.as_table(system_tags=True).column_names == pull.as_table(system_tags=True).column_names
    )


def test_source_nodes_keep_the_source_identity() -> None:
    src = source()
    with Pipeline("source-identity", MemoryStore()) as pipeline:
        inc.pod(src)
    assert pipeline.src.pipeline_hash() == src.pipeline_hash()
    assert pipeline.src.content_hash() == src.content_hash()


def test_completed_nodes_keep_their_results_after_a_failure() -> None:
    store = MemoryStore()

    @function_pod("z", live_output=False)
    def explode(y: int) -> int:
        raise RuntimeError("boom")

    with Pipeline("partial", store) as pipeline:
        explode.pod(inc.pod(source(3)))
    with pytest.raises(podline.FunctionCallError):
        pipeline.run(error_policy="fail_fast")
    CALLS.clear()
    with Pipeline("partial", store) as again:
        inc.pod(source(3))
    again.run()
    assert CALLS == []  # inc's results were persisted before explode failed


def test_error_messages_are_sorted_and_stable() -> None:
    script = textwrap.dedent(
        """
        import podline
        from podline import function_pod

        @function_pod("out", live_output=False)
        def f(zeta: int, alpha: int, mid: int) -> int:
            return zeta

        try:
            f.pod(podline.DictSource([{"id": 1, "other": 1}], ["id"]))
        except podline.InputValidationError as error:
            print(error)
        """
    )

    def message(seed: str, tmp: str) -> str:
        path = os.path.join(tmp, f"job_{seed}.py")
        with open(path, "w") as handle:
            handle.write(script)
        env = {**os.environ, "PYTHONHASHSEED": seed}
        return subprocess.run(
            [sys.executable, path], capture_output=True, text=True, check=True, env=env
        ).stdout

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        first, second = message("1", tmp), message("4242", tmp)
    assert first == second
    assert "'alpha', 'mid', 'zeta'" in first


def test_outputs_are_never_stale_after_a_new_run() -> None:
    store = MemoryStore()
    with Pipeline("stale", store) as pipeline:
        inc.pod(source(2))
    pipeline.run()
    assert len(pipeline.inc.as_table()) == 2
    with Pipeline("stale", store) as bigger:
        inc.pod(source(3))
    bigger.run()
    assert len(bigger.inc.as_table()) == 3


def test_mistyped_inputs_fail_when_the_pipeline_is_built() -> None:
    with pytest.raises(InputValidationError), Pipeline("typed", MemoryStore()):
        inc.pod(podline.DictSource([{"id": 1, "a": "text"}], ["id"]))


class RecordingExecutor:
    """An executor that runs calls locally and remembers that it was used."""

    def __init__(self) -> None:
        self.batches = 0

    def execute(self, fn: Any, arguments: Any, *, policy: Any = None) -> Any:
        from podline.executors import CallPolicy, LocalExecutor

        self.batches += 1
        return LocalExecutor().execute(fn, arguments, policy=policy or CallPolicy())


def test_run_executor_applies_to_every_function_node_and_nodes_override_it() -> None:
    @function_pod("z", live_output=False)
    def dec(y: int) -> int:
        return y - 1

    with Pipeline("executors", MemoryStore()) as pipeline:
        dec.pod(inc.pod(source(3)))
    run_wide, own = RecordingExecutor(), RecordingExecutor()
    pipeline.dec.executor = own  # type: ignore[attr-defined]
    pipeline.run(executor=run_wide)
    assert run_wide.batches == 1  # inc ran on the run's executor
    assert own.batches == 1  # dec ran on its own
    assert pipeline.dec.as_table().column("z").to_pylist() == [0, 1, 2]


def test_empty_buffers_keep_their_node_identity() -> None:
    @function_pod("never", live_output=False)
    def nothing(a: int) -> int:
        return podline.SKIP

    right = podline.DictSource([{"id": 1, "b": 1}], ["id"], label="right")
    with Pipeline("empty-identity", MemoryStore()) as pipeline:
        Join()(nothing.pod(source(3)), right, label="joined")
    pull = Join()(nothing.pod(source(3)), right)
    pipeline.run()
    table = pipeline.joined.as_table(system_tags=True)
    assert table.num_rows == 0
    assert table.column_names == pull.as_table(system_tags=True).column_names


class EndSpy(Observer):
    def __init__(self) -> None:
        self.ends: list[tuple[dict[str, Any], Any, bool]] = []

    def on_packet_end(
        self, *, tag: podline.Tag, output_packet: Any, cached: bool, **kwargs: Any
    ) -> None:
        out = None if output_packet is None else output_packet.as_dict()
        self.ends.append((tag.as_dict(), out, cached))


def test_skipped_packets_still_end_with_no_output() -> None:
    @function_pod("y", live_output=False)
    def odd_only(a: int) -> int:
        return a if a % 2 else podline.SKIP

    with Pipeline("skips", MemoryStore()) as pipeline:
        odd_only.pod(source(3))
    spy = EndSpy()
    pipeline.run(observer=spy)
    assert spy.ends == [
        ({"id": 0}, None, False),
        ({"id": 1}, {"y": 1}, False),
        ({"id": 2}, None, False),
    ]


def test_a_failing_node_raises_without_ending() -> None:
    @function_pod("y", live_output=False)
    def broken(a: int) -> int:
        raise KeyError("missing")

    with Pipeline("raises", MemoryStore()) as pipeline:
        broken.pod(source(2))
    counter = Counter()
    with pytest.raises(podline.FunctionCallError, match="KeyError"):
        pipeline.run(observer=counter, error_policy="fail_fast")
    assert "broken" in counter.node_starts
    assert "broken" not in counter.node_ends


def test_records_are_keyed_by_the_input_tag_and_say_what_happened() -> None:
    store = MemoryStore()
    with Pipeline("flags", store) as first:
        inc.pod(source(2))
    first.run()
    function = first.inc
    records = function.store.scan("records")  # type: ignore[attr-defined]
    stream = first.src.execute()
    assert sorted(records.column("__record_id").to_pylist()) == sorted(
        function.entry_ids(stream).to_pylist()  # type: ignore[attr-defined]
    )
    assert records.column("__meta:status").to_pylist() == ["computed", "computed"]
    # Another pipeline on the same store finds the results in the shared memo.
    with Pipeline("other", store) as second:
        inc.pod(source(2))
    second.run()
    other = second.inc.store.scan("records")  # type: ignore[attr-defined]
    assert other.column("__meta:status").to_pylist() == ["cached", "cached"]


def test_run_flushes_the_store(tmp_path: Any) -> None:
    from podline.stores import DeltaStore

    store = DeltaStore(tmp_path / "db", flush_rows=10**9, flush_seconds=3600)
    with Pipeline("flushed", store) as pipeline:
        inc.pod(source(3))
    pipeline.run()
    reopened = DeltaStore(tmp_path / "db")
    assert reopened.list(("pipelines", "flushed"))
    assert reopened.scan(("pipelines", "flushed", "runs")) is not None


def test_concurrent_executors_keep_input_order() -> None:
    import random
    import time

    from podline.executors import ThreadExecutor

    @function_pod("y", live_output=False)
    def jittery(a: int) -> int:
        time.sleep(random.random() / 200)
        return a

    with Pipeline("order", MemoryStore()) as pipeline:
        jittery.pod(source(40))
    pipeline.run(executor=ThreadExecutor(8))
    assert pipeline.jittery.as_table().column("y").to_pylist() == list(range(40))


def test_outputs_follow_the_latest_run() -> None:
    store = MemoryStore()
    with Pipeline("latest", store) as pipeline:
        inc.pod(source(2))
    pipeline.run()
    before = pipeline.inc.as_table()
    pipeline.run()
    assert pipeline.inc.as_table().equals(before)


def test_each_packet_starts_before_its_calls_batch_and_ends_after() -> None:
    events: list[tuple[str, int]] = []

    class Order(Observer):
        def on_packet_start(self, *, tag: podline.Tag, **kwargs: Any) -> None:
            events.append(("start", tag["id"]))

        def on_packet_end(self, *, tag: podline.Tag, **kwargs: Any) -> None:
            events.append(("end", tag["id"]))

    @function_pod("y", live_output=False)
    def logged(a: int) -> int:
        events.append(("call", a))
        return a

    store = MemoryStore()
    with Pipeline("start-order", store) as pipeline:
        logged.pod(source(3))
    pipeline.run(observer=Order())
    # Every start precedes its call, every call precedes its end, in input order.
    for i in range(3):
        assert events.index(("start", i)) < events.index(("call", i)) < events.index(("end", i))
    events.clear()
    pipeline.run(observer=Order())  # cached: each packet starts and ends, nothing is called
    assert events == [("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 2), ("end", 2)]
