"""OpenTelemetry tracing of pipeline runs: ``OpenTelemetryObserver``.

This module owns how a run becomes a trace: one span per run, a child span per node, and a
grandchild span per computed packet (crashes included), each carrying the node label, node
hash, pipeline URI and run id. Cached packets get no span by default (they are counted on
their node's span instead), since a re-run of a 100,000-packet node would otherwise export
100,000 spans that say "nothing happened".

OpenTelemetry is optional (the ``podline[otel]`` extra): it is imported when an observer is
created, and a missing install raises ``MissingDependencyError`` naming the extra.

Packet span timing. Nodes report packets in batches (``on_packets_start`` /
``on_packets_end``), so hook times alone would give every packet of a batch the batch's
duration. A batch's outcomes carry each computed call's own start and end; packet spans use
those times (a packet without them spans from its batch's start hook to its end hook). The
per-packet hooks, for callers that fire them, do the same with the captures they receive
through ``create_packet_logger``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np

from podline.datagrams import Packet, Tag
from podline.errors import FunctionCallError, MissingDependencyError
from podline.executors import CallCapture
from podline.functions import RowStatus
from podline.nodes.observers import Observer
from podline.nodes.packets import PacketBatch, PacketOutcomes

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["MissingDependencyError", "OpenTelemetryObserver"]

#: Span attribute keys (counts on node and run spans are ``podline.packets.<status>``).
RUN_ID = "podline.run.id"
PIPELINE_URI = "podline.pipeline.uri"
NODE_LABEL = "podline.node.label"
NODE_HASH = "podline.node.hash"
CACHED = "podline.cached"
SKIPPED = "podline.skipped"
TAG = "podline.tag"
ERROR_TYPE = "error.type"  # OpenTelemetry's semantic-convention key
_STATUSES = ("computed", "cached", "skipped", "failed")
_CODES = tuple(RowStatus)
_CACHED_CODE = _CODES.index(RowStatus.CACHED)  # codes up to here produced an output
_SKIPPED_CODE = _CODES.index(RowStatus.SKIPPED)
_FAILED_CODE = _CODES.index(RowStatus.FAILED)
_TAG_CHARS = 1024


def _import_trace() -> Any:
    try:
        from opentelemetry import trace
    except ImportError as exc:
        raise MissingDependencyError(
            "OpenTelemetryObserver needs OpenTelemetry, which is not installed: "
            "pip install 'podline[otel]'"
        ) from exc
    return trace


def _podline_version() -> str | None:
    try:
        return metadata.version("podline")
    except metadata.PackageNotFoundError:
        return None


def _ns(seconds: float) -> int:
    """Epoch seconds (a capture's clock) to epoch nanoseconds (OpenTelemetry's)."""
    return int(seconds * 1e9)


def _tag_key(tag: Tag | None) -> Any:
    """A hashable key of a tag's values, to pair a call's capture with its packet's end."""
    if tag is None:
        return None
    items = tuple(tag.as_dict().items())
    try:
        hash(items)
    except TypeError:  # list or dict values
        return repr(items)
    return items


def _error_type(error: BaseException) -> str:
    """The class name of what went wrong: the user's exception, not podline's wrapper."""
    if isinstance(error, FunctionCallError) and error.__cause__ is not None:
        error = error.__cause__
    kind = type(error)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


class _CaptureSink:
    """The packet logger handed to a node: keeps the capture for the packet's span."""

    __slots__ = ("key", "queue")

    def __init__(self, queue: dict[Any, deque[CallCapture]], key: Any) -> None:
        self.queue = queue
        self.key = key

    def record(self, capture: CallCapture) -> None:
        self.queue.setdefault(self.key, deque()).append(capture)


class _NodeSpans(Observer):
    """One node's span and packet spans: what ``OpenTelemetryObserver.contextualize`` returns."""

    def __init__(self, owner: OpenTelemetryObserver, label: str) -> None:
        self.owner = owner
        self.label = label
        self.node_hash = ""
        self.span: Span | None = None
        self.context: Context | None = None
        self.counts = dict.fromkeys(_STATUSES, 0)
        # Start times by input packet object: nodes pass the same Packet object to a packet's
        # start and end hooks, and keep it alive in between.
        self.starts: dict[int, int] = {}
        # Captures of computed calls by tag values, in call order (see the module docstring).
        self.captures: dict[Any, deque[CallCapture]] = {}
        # Start times of packets announced in batches, by (batch inputs, row).
        self.batch_starts: dict[tuple[int, int], int] = {}

    # ------------------------------------------------------------------ node
    def on_node_start(self, *, node_label: str = "", node_hash: str = "", **kwargs: Any) -> None:
        owner = self.owner
        self.label = node_label or self.label
        self.node_hash = node_hash
        self.span = owner.tracer.start_span(
            f"podline.node {self.label}",
            context=owner.run_context,
            attributes={
                NODE_LABEL: self.label,
                NODE_HASH: node_hash,
                PIPELINE_URI: owner.pipeline_uri,
                RUN_ID: owner.run_id,
            },
        )
        self.context = owner.trace.set_span_in_context(self.span)
        owner._opened(self)

    def on_node_end(self, **kwargs: Any) -> None:
        self.finish(error=None)

    def finish(self, error: str | None) -> None:
        """End the node's span with its counts (``error``: why it did not finish)."""
        span, self.span = self.span, None
        if span is None:
            return
        for status, count in self.counts.items():
            span.set_attribute(f"podline.packets.{status}", count)
        if error is not None:
            span.set_status(self.owner.trace.Status(self.owner.trace.StatusCode.ERROR, error))
        span.end()
        self.starts.clear()
        self.captures.clear()
        self.batch_starts.clear()
        self.owner._closed(self)

    # ------------------------------------------------------------------ batches
    # What nodes call: spans are made from the batch's columns and captures, so no per-packet
    # objects are built, and each computed packet's span gets its own call's times.
    def on_packets_start(self, *, batch: PacketBatch, **kwargs: Any) -> None:
        now = time.time_ns()
        rows = range(len(batch)) if batch.indices is None else batch.indices.tolist()
        for row in rows:
            self.batch_starts[id(batch.inputs), row] = now

    def on_packets_end(self, *, batch: PacketOutcomes, **kwargs: Any) -> None:
        codes = batch.codes
        produced = codes <= _CACHED_CODE
        counts = {
            "computed": int(np.count_nonzero(produced & batch.computed)),
            "cached": int(np.count_nonzero(produced & ~batch.computed)),
            "skipped": batch.count(RowStatus.SKIPPED),
            "failed": batch.count(RowStatus.FAILED),
        }
        for status, count in counts.items():
            self.counts[status] += count
        spanned = batch.computed | (codes == _FAILED_CODE)
        if self.owner.emit_cached:
            spanned = np.ones(len(batch), dtype=bool)
        rows = np.flatnonzero(spanned).tolist()
        if not rows:
            return
        tags = self._tag_values(batch, rows)
        key = id(batch.inputs)
        computed, statuses = batch.computed.tolist(), codes.tolist()
        times = batch.call_times
        for row, tag in zip(rows, tags, strict=True):
            start = self.batch_starts.pop((key, row), None)
            end: int | None = None
            if times is not None and not np.isnan(times[row, 0]):
                start, end = _ns(float(times[row, 0])), _ns(float(times[row, 1]))
            failed = statuses[row] == _FAILED_CODE
            span = self._start_packet_span(
                tag,
                start,
                cached=not computed[row],
                skipped=statuses[row] == _SKIPPED_CODE,
            )
            if failed:
                self._fail(span, batch.errors.get(row))
            span.end(end_time=end)

    def _tag_values(self, batch: PacketOutcomes, rows: list[int]) -> list[dict[str, Any] | None]:
        if not self.owner.record_tags:
            return [None] * len(rows)
        names, _ = batch.inputs.keys()
        if not names:  # (a table of no columns lists no rows at all)
            return [{} for _ in rows]
        visible = batch.inputs.as_table().select(list(names))
        return visible.take(rows).to_pylist()

    # ------------------------------------------------------------------ packets
    def on_packet_start(self, *, packet: Packet | None = None, **kwargs: Any) -> None:
        self.starts[id(packet)] = time.time_ns()

    def on_packet_end(
        self,
        *,
        tag: Tag | None = None,
        input_packet: Packet | None = None,
        output_packet: Packet | None = None,
        cached: bool = False,
        **kwargs: Any,
    ) -> None:
        start = self.starts.pop(id(input_packet), None)
        skipped = output_packet is None
        self.counts["skipped" if skipped else "cached" if cached else "computed"] += 1
        if cached and not self.owner.emit_cached:
            return
        span, end = self._packet_span(tag, start, cached=cached, skipped=skipped)
        span.end(end_time=end)

    def on_packet_crash(
        self,
        *,
        tag: Tag | None = None,
        packet: Packet | None = None,
        error: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        start = self.starts.pop(id(packet), None)
        self.counts["failed"] += 1
        span, end = self._packet_span(tag, start, cached=False, skipped=False)
        self._fail(span, error)
        span.end(end_time=end)

    def _fail(self, span: Span, error: BaseException | None) -> None:
        if error is not None:
            span.set_attribute(ERROR_TYPE, _error_type(error))
            # The recorded stack trace follows the exception's chain down to the user's error.
            span.record_exception(error)
        trace = self.owner.trace
        description = f"{type(error).__name__}: {error}" if error is not None else "failed"
        span.set_status(trace.Status(trace.StatusCode.ERROR, description))

    def _packet_span(
        self, tag: Tag | None, start: int | None, *, cached: bool, skipped: bool
    ) -> tuple[Span, int | None]:
        """A started packet span and the time to end it at (None: now).

        A computed call's capture, when one arrived, gives the call's own start and end.
        """
        capture = None
        if not cached:
            queue = self.captures.get(_tag_key(tag))
            if queue:
                capture = queue.popleft()
        end: int | None = None
        if capture is not None and capture.end:
            start, end = _ns(capture.start), _ns(capture.end)
        values = tag.as_dict() if tag is not None else None
        return self._start_packet_span(values, start, cached=cached, skipped=skipped), end

    def _start_packet_span(
        self, tag: dict[str, Any] | None, start: int | None, *, cached: bool, skipped: bool
    ) -> Span:
        owner = self.owner
        attributes: dict[str, Any] = {
            NODE_LABEL: self.label,
            NODE_HASH: self.node_hash,
            PIPELINE_URI: owner.pipeline_uri,
            RUN_ID: owner.run_id,
            CACHED: cached,
            SKIPPED: skipped,
        }
        if owner.record_tags and tag is not None:
            # Tags identify rows and are short; the cap keeps an odd huge value out of exports.
            attributes[TAG] = repr(tag)[:_TAG_CHARS]
        return owner.tracer.start_span(
            f"podline.packet {self.label}",
            context=self.context,
            attributes=attributes,
            start_time=start,
        )

    def create_packet_logger(self, tag: Tag, packet: Packet) -> Any:
        return _CaptureSink(self.captures, _tag_key(tag))

    def contextualize(self, *identity_path: str) -> _NodeSpans:
        return self


class OpenTelemetryObserver(Observer):
    """Traces runs with OpenTelemetry: a span per run, per node and per computed packet.

    ``tracer_provider``: where spans go (default: the global provider, which the application
    configures with its exporters). ``emit_cached``: also give each cached packet a span
    (off by default: cached packets are counted on their node's span). ``record_tags``: put
    each packet's tag values on its span as ``podline.tag``.

    The run span is a child of the span current when the run starts, so a run started inside
    an application's own span nests under it.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        emit_cached: bool = False,
        record_tags: bool = True,
    ) -> None:
        self.trace = _import_trace()
        self.tracer: Tracer = self.trace.get_tracer(
            "podline", _podline_version(), tracer_provider=tracer_provider
        )
        self.emit_cached = emit_cached
        self.record_tags = record_tags
        self.run_id = ""
        self.pipeline_uri = ""
        self.run_span: Span | None = None
        self.run_context: Context | None = None
        self._lock = threading.Lock()  # nodes may run concurrently (async orchestrators)
        self._open: list[_NodeSpans] = []
        self._totals = dict.fromkeys(_STATUSES, 0)
        self._unfinished: list[str] = []
        self._by_label: dict[str, _NodeSpans] = {}

    # ------------------------------------------------------------------ run
    def on_run_start(self, *, run_id: str = "", pipeline_uri: str = "", **kwargs: Any) -> None:
        self.run_id = run_id
        self.pipeline_uri = pipeline_uri
        self._totals = dict.fromkeys(_STATUSES, 0)
        self._unfinished = []
        self._by_label = {}
        self.run_span = self.tracer.start_span(
            "podline.run", attributes={RUN_ID: run_id, PIPELINE_URI: pipeline_uri}
        )
        self.run_context = self.trace.set_span_in_context(self.run_span)

    def on_run_end(self, **kwargs: Any) -> None:
        # A node that raised gets no on_node_end: end its span here, marked as failed.
        with self._lock:
            remaining = list(self._open)
        for node in remaining:
            node.finish(error="the node did not finish")
            self._unfinished.append(node.label)
        span, self.run_span = self.run_span, None
        if span is None:
            return
        for status, count in self._totals.items():
            span.set_attribute(f"podline.packets.{status}", count)
        error = kwargs.get("error")
        if isinstance(error, BaseException):
            span.record_exception(error)
        if self._unfinished or error is not None:
            unfinished = ", ".join(self._unfinished)
            message = f"unfinished node(s): {unfinished}" if unfinished else str(error)
            span.set_status(self.trace.Status(self.trace.StatusCode.ERROR, message))
        span.end()
        self.run_context = None

    # ------------------------------------------------------------------ nodes
    def contextualize(self, *identity_path: str) -> Observer:
        return _NodeSpans(self, identity_path[0] if identity_path else "")

    def _opened(self, node: _NodeSpans) -> None:
        with self._lock:
            self._open.append(node)

    def _closed(self, node: _NodeSpans) -> None:
        with self._lock:
            if node in self._open:
                self._open.remove(node)
            for status, count in node.counts.items():
                self._totals[status] += count

    # Hooks that reach the observer itself (a node executed without contextualize) go to a
    # per-label node view, so the spans are the same either way.
    def _view(self, node_label: str) -> _NodeSpans:
        view = self._by_label.get(node_label)
        if view is None:
            view = self._by_label[node_label] = _NodeSpans(self, node_label)
        return view

    def on_node_start(self, *, node_label: str = "", **kwargs: Any) -> None:
        self._view(node_label).on_node_start(node_label=node_label, **kwargs)

    def on_node_end(self, *, node_label: str = "", **kwargs: Any) -> None:
        view = self._by_label.pop(node_label, None)
        if view is not None:
            view.on_node_end()

    def on_packets_start(self, *, node_label: str = "", **kwargs: Any) -> None:
        self._view(node_label).on_packets_start(**kwargs)

    def on_packets_end(self, *, node_label: str = "", **kwargs: Any) -> None:
        self._view(node_label).on_packets_end(**kwargs)

    def on_packet_start(self, *, node_label: str = "", **kwargs: Any) -> None:
        self._view(node_label).on_packet_start(**kwargs)

    def on_packet_end(self, *, node_label: str = "", **kwargs: Any) -> None:
        self._view(node_label).on_packet_end(**kwargs)

    def on_packet_crash(self, *, node_label: str = "", **kwargs: Any) -> None:
        self._view(node_label).on_packet_crash(**kwargs)
