"""OpenTelemetryObserver: a span per run, per node (child of the run) and per computed packet
(child of its node), with podline's attributes; cached packets are counted, not traced, unless
asked; crashes record the exception and set status ERROR."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import podline
from podline import SKIP, function_pod
from podline.errors import PodlineError
from podline.observability.otel import MissingDependencyError, OpenTelemetryObserver
from podline.pipeline import NoOpObserver, Pipeline
from podline.stores import MemoryStore

PAUSE = 0.02


@function_pod("y", live_output=False)
def traced(a: int) -> int:
    """Computes rows 0, 3 and 4, skips row 2, fails on row 1."""
    time.sleep(PAUSE)
    if a == 1:
        raise ValueError("a == 1")
    if a == 2:
        return SKIP
    return 10 * a


@function_pod("z", live_output=False)
def after(y: int) -> int:
    return y + 1


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def build() -> Pipeline:
    rows = [{"id": i, "a": i} for i in range(5)]
    source = podline.DictSource(rows, tag_columns=["id"], label="numbers")
    with Pipeline("traced", MemoryStore()) as pipeline:
        after.pod(traced.pod(source))
    return pipeline


def attrs(span: ReadableSpan | Event) -> dict[str, Any]:
    return dict(span.attributes or {})


def of_kind(spans: Sequence[ReadableSpan], kind: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.split(" ")[0] == f"podline.{kind}"]


def node_span(spans: Sequence[ReadableSpan], label: str) -> ReadableSpan:
    (span,) = [s for s in of_kind(spans, "node") if attrs(s)["podline.node.label"] == label]
    return span


def test_a_span_per_run_node_and_computed_packet(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    pipeline = build()
    result = pipeline.run(observer=OpenTelemetryObserver(provider))
    spans = exporter.get_finished_spans()
    runs, nodes, packets = (of_kind(spans, k) for k in ("run", "node", "packet"))
    assert len(spans) == len(runs) + len(nodes) + len(packets)
    assert len(runs) == 1
    assert sorted(attrs(s)["podline.node.label"] for s in nodes) == [
        "after",
        "numbers",
        "traced",
    ]
    # traced: 3 computed, 1 skipped, 1 failed; after: 3 computed.
    assert len(packets) == 8

    (run,) = runs
    assert run.parent is None
    assert attrs(run)["podline.run.id"] == result.run_id
    assert attrs(run)["podline.pipeline.uri"] == pipeline.uri
    assert attrs(run)["podline.packets.computed"] == 6
    assert run.status.status_code is StatusCode.UNSET
    assert {s.context.trace_id for s in spans} == {run.context.trace_id}
    for node in nodes:
        assert node.parent is not None
        assert node.parent.span_id == run.context.span_id
        label = attrs(node)["podline.node.label"]
        assert attrs(node)["podline.node.hash"] == str(pipeline.nodes[label].content_hash())
        assert attrs(node)["podline.pipeline.uri"] == pipeline.uri
        assert attrs(node)["podline.run.id"] == result.run_id
    for packet in packets:
        label = attrs(packet)["podline.node.label"]
        assert packet.parent is not None
        assert packet.parent.span_id == node_span(spans, label).context.span_id
        assert attrs(packet)["podline.node.hash"] == str(pipeline.nodes[label].content_hash())
        assert attrs(packet)["podline.run.id"] == result.run_id
        assert attrs(packet)["podline.pipeline.uri"] == pipeline.uri
        assert attrs(packet)["podline.cached"] is False

    counts = attrs(node_span(spans, "traced"))
    assert (
        counts["podline.packets.computed"],
        counts["podline.packets.cached"],
        counts["podline.packets.skipped"],
        counts["podline.packets.failed"],
    ) == (3, 0, 1, 1)
    by_tag = {
        attrs(s)["podline.tag"]: s for s in packets if attrs(s)["podline.node.label"] == "traced"
    }
    assert attrs(by_tag["{'id': 2}"])["podline.skipped"] is True
    assert attrs(by_tag["{'id': 0}"])["podline.skipped"] is False


def test_a_crash_records_the_exception_and_sets_error(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    build().run(observer=OpenTelemetryObserver(provider))
    spans = exporter.get_finished_spans()
    failed = [s for s in of_kind(spans, "packet") if s.status.status_code is StatusCode.ERROR]
    assert len(failed) == 1
    (crash,) = failed
    assert attrs(crash)["podline.tag"] == "{'id': 1}"
    assert attrs(crash)["error.type"] == "ValueError"  # the user's error, not the wrapper
    assert crash.status.description is not None
    assert "a == 1" in crash.status.description
    (event,) = crash.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert attrs(event)["exception.type"].endswith("FunctionCallError")
    assert "ValueError: a == 1" in str(attrs(event)["exception.stacktrace"])
    # Under error_policy="continue" the node and the run finish: only the packet failed.
    assert node_span(spans, "traced").status.status_code is StatusCode.UNSET


def test_packet_spans_time_their_own_call(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    build().run(observer=OpenTelemetryObserver(provider))
    spans = exporter.get_finished_spans()
    calls = sorted(
        (s for s in of_kind(spans, "packet") if attrs(s)["podline.node.label"] == "traced"),
        key=lambda s: s.start_time or 0,
    )
    node = node_span(spans, "traced")
    assert node.start_time is not None
    assert node.end_time is not None
    for call in calls:
        assert call.start_time is not None
        assert call.end_time is not None
        assert PAUSE * 1e9 <= call.end_time - call.start_time < 50 * PAUSE * 1e9
        assert node.start_time <= call.start_time <= call.end_time <= node.end_time
    # The calls ran one after another, and their spans say so (rather than all spanning the
    # whole batch, which is when the node's hooks fire).
    for first, second in itertools.pairwise(calls):
        assert first.end_time is not None
        assert second.start_time is not None
        assert first.end_time <= second.start_time


def test_cached_packets_are_counted_not_traced(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    pipeline = build()
    pipeline.run(observer=NoOpObserver())  # warm the memo, observing nothing
    pipeline.run(observer=OpenTelemetryObserver(provider))
    spans = exporter.get_finished_spans()
    # Only the failure is computed again; the remembered skip and outputs are served.
    packets = of_kind(spans, "packet")
    assert [attrs(s)["podline.tag"] for s in packets] == ["{'id': 1}"]
    attributes = attrs(node_span(spans, "traced"))
    assert attributes["podline.packets.cached"] == 3
    assert attributes["podline.packets.skipped"] == 1
    assert attrs(node_span(spans, "after"))["podline.packets.cached"] == 3
    (run,) = of_kind(spans, "run")
    assert attrs(run)["podline.packets.cached"] == 6


def test_cached_packets_get_spans_when_asked(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    pipeline = build()
    pipeline.run(observer=NoOpObserver())  # warm the memo, observing nothing
    pipeline.run(observer=OpenTelemetryObserver(provider, emit_cached=True))
    packets = of_kind(exporter.get_finished_spans(), "packet")
    cached = [s for s in packets if attrs(s)["podline.cached"] is True]
    assert len(cached) == 7  # traced: 3 outputs and 1 skip; after: 3 outputs
    assert len(packets) == 8  # and the retried failure


def test_a_failing_run_ends_every_span_with_error(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    with pytest.raises(podline.FunctionCallError):
        build().run(observer=OpenTelemetryObserver(provider), error_policy="fail_fast")
    spans = exporter.get_finished_spans()
    node = node_span(spans, "traced")
    assert node.status.status_code is StatusCode.ERROR
    (run,) = of_kind(spans, "run")
    assert run.status.status_code is StatusCode.ERROR
    assert run.status.description == "unfinished node(s): traced"
    assert [attrs(s)["podline.node.label"] for s in of_kind(spans, "node")] == [
        "numbers",
        "traced",
    ]


def test_a_run_nests_under_the_current_span(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer") as outer:
        build().run(observer=OpenTelemetryObserver(provider))
    (run,) = of_kind(exporter.get_finished_spans(), "run")
    assert run.parent is not None
    assert run.parent.span_id == outer.get_span_context().span_id


def test_tags_can_be_left_off(exporter: InMemorySpanExporter, provider: TracerProvider) -> None:
    build().run(observer=OpenTelemetryObserver(provider, record_tags=False))
    packets = of_kind(exporter.get_finished_spans(), "packet")
    assert packets
    assert all("podline.tag" not in attrs(s) for s in packets)


@pytest.mark.parametrize("orchestrator", ["sync", "async"])
def test_a_node_whose_input_has_no_tags_is_traced(
    exporter: InMemorySpanExporter, provider: TracerProvider, orchestrator: str
) -> None:
    """Tags dropped before a function (for a fan-in join, say): a span per computed packet,
    with no tag attribute values to record (the run failed on them before)."""
    rows = [{"id": i, "a": i} for i in (0, 3, 4)]
    source = podline.DictSource(rows, tag_columns=["id"], label="numbers")
    with Pipeline("untagged", MemoryStore()) as pipeline:
        after.pod(source.drop_tag_columns(["id"]), inputs={"y": "a"})
    result = pipeline.run(orchestrator, observer=OpenTelemetryObserver(provider))
    assert result.counts["after"].computed == 3
    assert len(of_kind(exporter.get_finished_spans(), "packet")) == 3


def test_hooks_reaching_the_observer_itself_make_the_same_tree(
    exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    observer = OpenTelemetryObserver(provider)
    observer.on_run_start(run_id="r1", pipeline_uri="p@1")
    observer.on_node_start(node_label="n", node_hash="h", tag_schema=podline.Schema({}))
    packet = object()
    observer.on_packet_start(node_label="n", node_hash="h", tag=None, packet=packet)
    observer.on_packet_end(
        node_label="n",
        node_hash="h",
        tag=None,
        input_packet=packet,
        output_packet=object(),
        cached=False,
    )
    observer.on_node_end(node_label="n", node_hash="h")
    observer.on_run_end(run_id="r1")
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["podline.packet n", "podline.node n", "podline.run"]
    packet_span, node, run = spans
    assert packet_span.parent is not None
    assert packet_span.parent.span_id == node.context.span_id
    assert node.parent is not None
    assert node.parent.span_id == run.context.span_id
    assert attrs(node)["podline.packets.computed"] == 1


def test_missing_opentelemetry_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'podline\[otel\]'") as info:
        OpenTelemetryObserver()
    assert isinstance(info.value, PodlineError)
    assert isinstance(info.value, ImportError)
