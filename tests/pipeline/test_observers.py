"""Observer seams: batch hooks, their translation into per-packet hooks, protocol-only
observers, and the ``total`` announced at a function node's start."""

from __future__ import annotations

from typing import Any

import pytest
from tests.internals import counting_row_builds

import podline
from podline import SKIP, function_pod
from podline.executors import CallCapture
from podline.functions import RowStatus
from podline.nodes.packets import PacketBatch, PacketOutcomes
from podline.pipeline import CompositeObserver, NoOpObserver, Observer, Pipeline
from podline.stores import MemoryStore, Store


@function_pod("y", live_output=False)
def picky(a: int) -> int:
    print(f"seen {a}")
    if a == 1:
        raise ValueError("no ones")
    return SKIP if a == 2 else a * 10


def build(store: Store, n: int = 5) -> Pipeline:
    rows = [{"id": i, "a": i} for i in range(n)]
    with Pipeline("observers", store) as pipeline:
        picky.pod(podline.DictSource(rows, tag_columns=["id"], label="numbers"))
    return pipeline


class Batches(Observer):
    """Reads the batch hooks only, as a fast observer would."""

    def __init__(self) -> None:
        self.starts: list[PacketBatch] = []
        self.ends: list[PacketOutcomes] = []
        self.totals: dict[str, Any] = {}

    def on_node_start(self, *, node_label: str, **kwargs: Any) -> None:
        self.totals[node_label] = kwargs.get("total")

    def on_packets_start(self, *, batch: PacketBatch, **kwargs: Any) -> None:
        self.starts.append(batch)

    def on_packets_end(self, *, batch: PacketOutcomes, **kwargs: Any) -> None:
        self.ends.append(batch)

    def on_packet_end(self, **kwargs: Any) -> None:
        raise AssertionError("batch hooks are overridden: no per-packet calls")


def test_batch_hooks_carry_columns_statuses_and_captures(store: Store) -> None:
    observer = Batches()
    build(store).run(observer=observer)
    assert observer.totals == {"numbers": None, "picky": 5}
    ((started,),) = [observer.starts]
    assert len(started) == 5  # every packet is computed in one batch of calls
    (ended,) = observer.ends
    assert ended.statuses == [
        RowStatus.COMPUTED,
        RowStatus.FAILED,
        RowStatus.SKIPPED,
        RowStatus.COMPUTED,
        RowStatus.COMPUTED,
    ]
    assert ended.count(RowStatus.COMPUTED) == 3
    assert ended.started.tolist() == [True] * 5
    assert ended.computed.tolist() == [True] * 5
    tags = ended.tags()
    assert tags.column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert any(name.startswith("__tag:") for name in tags.column_names)  # system tags
    assert [p["y"] if p is not None else None for p in ended.output_packets()] == [
        0,
        None,
        None,
        30,
        40,
    ]
    assert set(ended.errors) == {1}
    assert {row: c.stdout for row, c in ended.captures.items()} == {
        i: f"seen {i}\n" for i in range(5)
    }

    # Second run: only the failed packet is computed again; the others are cached.
    again = Batches()
    build(store).run(observer=again)
    (retried,) = again.starts
    assert retried.tags().column("id").to_pylist() == [1]
    (ended,) = again.ends
    assert ended.computed.tolist() == [False, True, False, False, False]
    assert ended.started.tolist() == [False, True, False, False, False]
    assert {row: c.stdout for row, c in ended.captures.items()} == {1: "seen 1\n"}


class PerPacket:
    """Implements only ObserverProtocol's hooks (no base class): the orchestrator must
    translate batches for it."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.logged: list[tuple[int, str]] = []

    def on_run_start(self, **kwargs: Any) -> None: ...

    def on_run_end(self, **kwargs: Any) -> None: ...

    def on_node_start(self, **kwargs: Any) -> None: ...

    def on_node_end(self, **kwargs: Any) -> None: ...

    def on_packet_start(self, *, tag: podline.Tag, **kwargs: Any) -> None:
        self.events.append(("start", tag["id"]))

    def on_packet_end(
        self, *, tag: podline.Tag, output_packet: Any, cached: bool, **kwargs: Any
    ) -> None:
        out = None if output_packet is None else output_packet["y"]
        self.events.append(("end", tag["id"], out, cached))

    def on_packet_crash(self, *, tag: podline.Tag, error: BaseException, **kwargs: Any) -> None:
        self.events.append(("crash", tag["id"], type(error).__name__))

    def contextualize(self, *identity_path: str) -> PerPacket:
        return self

    def create_packet_logger(self, tag: podline.Tag, packet: podline.Packet) -> Any:
        observer = self

        class Logger:
            def record(self, capture: CallCapture) -> None:
                observer.logged.append((tag["id"], capture.stdout))

        return Logger()


@pytest.mark.parametrize("composite", [False, True])
def test_protocol_only_observers_get_per_packet_hooks_in_order(composite: bool) -> None:
    store = MemoryStore()
    observer = PerPacket()
    build(store).run(observer=CompositeObserver(observer) if composite else observer)
    starts = [("start", i) for i in range(5)]
    ends = [
        ("end", 0, 0, False),
        ("crash", 1, "FunctionCallError"),
        ("end", 2, None, False),
        ("end", 3, 30, False),
        ("end", 4, 40, False),
    ]
    assert observer.events == starts + ends  # all start before the calls, then end in order
    assert observer.logged == [(i, f"seen {i}\n") for i in range(5)]

    observer.events.clear()
    observer.logged.clear()
    build(store).run(observer=observer)
    # The failed packet is tried again (it starts before its call); served packets start
    # right before they end, as cached.
    assert observer.events == [
        ("start", 1),
        ("start", 0),
        ("end", 0, 0, True),
        ("crash", 1, "FunctionCallError"),
        ("start", 2),
        ("end", 2, None, True),
        ("start", 3),
        ("end", 3, 30, True),
        ("start", 4),
        ("end", 4, 40, True),
    ]
    assert observer.logged == [(1, "seen 1\n")]


def test_observers_that_build_no_rows_cost_no_rows(store: Store) -> None:
    with counting_row_builds() as built:
        build(store, n=50).run(observer=Batches())
    assert built == []  # nobody asked for Tag/Packet objects, so none were made


class Recorder(NoOpObserver):
    """The reference system's idiom: subclass the no-op observer, override packet hooks."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_packet_start(self, *, node_label: str, tag: podline.Tag, **kwargs: Any) -> None:
        self.events.append(("start", node_label, tag["id"]))

    def on_packet_end(self, *, tag: podline.Tag, cached: bool, **kwargs: Any) -> None:
        self.events.append(("end", tag["id"], cached))

    def on_packet_crash(self, *, tag: podline.Tag, error: BaseException, **kwargs: Any) -> None:
        self.events.append(("crash", tag["id"], type(error.__cause__).__name__))


class Quiet(Observer):
    """An observer that opts out of packets explicitly..."""

    observes_packets = False


class LoudAfterAll(Quiet):
    """...and a subclass that overrides a packet hook: it must get it all the same."""

    def __init__(self) -> None:
        self.ended: list[int] = []

    def on_packet_end(self, *, tag: podline.Tag, **kwargs: Any) -> None:
        self.ended.append(tag["id"])


@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_subclasses_of_the_no_op_observer_get_the_packet_hooks_they_override(
    orchestrator: str,
) -> None:
    store = MemoryStore()
    observer = Recorder()
    build(store, n=3).run(orchestrator, observer=observer)  # type: ignore[arg-type]
    assert sorted(observer.events, key=str) == sorted(
        [
            ("start", "picky", 0),
            ("start", "picky", 1),
            ("start", "picky", 2),
            ("end", 0, False),
            ("crash", 1, "ValueError"),
            ("end", 2, False),
        ],
        key=str,
    )
    loud = LoudAfterAll()
    build(store, n=3).run(orchestrator, observer=loud)  # type: ignore[arg-type]
    assert sorted(loud.ended) == [0, 2]  # the failed packet crashes again, it does not end


def test_observes_packets_follows_what_a_class_overrides() -> None:
    assert NoOpObserver.observes_packets is False
    assert Observer.observes_packets is False
    assert Recorder.observes_packets is True
    assert Quiet.observes_packets is False  # set in its own body: kept
    assert LoudAfterAll.observes_packets is True  # not inherited from Quiet
    assert Batches.observes_packets is True  # batch hooks count too


def test_an_observer_that_overrides_no_packet_hook_costs_no_rows(store: Store) -> None:
    class NodesOnly(NoOpObserver):
        def __init__(self) -> None:
            self.nodes: list[str] = []

        def on_node_end(self, *, node_label: str, **kwargs: Any) -> None:
            self.nodes.append(node_label)

    observer = NodesOnly()
    with counting_row_builds() as built:
        build(store, n=50).run(observer=observer)
    assert observer.nodes == ["numbers", "picky"]
    assert built == []
