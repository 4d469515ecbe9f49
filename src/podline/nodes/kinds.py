"""The three node kinds: ``SourceNode``, ``OperatorNode`` and ``FunctionNode``."""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import is_system_tag, parse_system_tag, source_lineage
from podline.conversion import table_with_schema
from podline.datagrams import Packet, Tag
from podline.errors import (
    FunctionCallError,
    InputValidationError,
    PipelineError,
    ReadOnlyNodeError,
    format_names,
)
from podline.executors import Executor
from podline.functions import FunctionPod, PodResult, ResultCache, RowStatus
from podline.functions.durability import COMMIT_SECONDS, CommitClock
from podline.functions.execution import call_failure, overwritten_error
from podline.functions.output_files import paths_by_row
from podline.functions.pod import FunctionPodStream
from podline.hashing import row_hash_strings
from podline.nodes.base import Node, NodeOutput, NodeType, empty_output, is_source_node
from podline.nodes.observers import NodeObserver
from podline.nodes.packets import PacketBatch, PacketOutcomes
from podline.nodes.preview import NodePreview, PreviewProducer, preview_rows
from podline.nodes.records import Found, ProvenanceRecords
from podline.nodes.streamed import StreamedEntries
from podline.runtime import deferred_interrupts
from podline.stores import RECORD_ID, Store
from podline.streams import (
    DelegatingStream,
    ProducedStream,
    Producer,
    Showable,
    Shown,
    SpillBuffer,
    Stream,
    TableStream,
    stream_chunks,
)

__all__ = [
    "CacheMode",
    "ErrorPolicy",
    "FunctionNode",
    "OperatorNode",
    "SourceNode",
    "StampedSource",
]

ErrorPolicy = Literal["continue", "fail_fast"]

#: Input rows per function-node batch: one bulk store lookup and one records write each.
#: Large enough that per-batch costs vanish, small enough that a batch's transient memory
#: (hashes, lookups, the records being written) stays a few MB: at 100,000 rows, 65,536-row
#: batches peaked some 60 MB higher for no gain in speed.
NODE_BATCH = 1 << 14
_log = logging.getLogger(__name__)


def _as_table_stream(stream: Stream, label: str) -> TableStream:
    # A source read in chunks stays so: its rows are read when a consumer reads them.
    chunked = stream.chunked_rows() if isinstance(stream, DelegatingStream) else None
    if chunked is not None:
        return chunked.relabelled(label)
    tags, _ = stream.keys()
    table = stream.as_table(system_tags=True, source_info=True)
    return TableStream(table, tags, label=label)


class SourceNode(Node):
    """A source of the pipeline. ``execute()`` reads the source; iterating the node before
    that delegates to the source each time (nothing is cached behind the user's back)."""

    node_type: ClassVar[NodeType] = "source"

    def execute(self, **kwargs: Any) -> TableStream:
        output = _as_table_stream(self.stream, self.label)
        self.set_output(output)
        return output

    def preview(self) -> TableStream:
        """The rows ``execute()`` would give, read now and not kept (the source's rows)."""
        return _as_table_stream(self.stream, self.label)

    def _kept(self) -> TableStream:
        if self._output is None:
            return _as_table_stream(self.stream, self.label)
        return self._output

    def _shown(self) -> Shown:
        # Before it runs, a source node shows its source's rows if they are at hand.
        shown = super()._shown()
        if self._output is None and isinstance(self.stream, Showable):
            return replace(shown, rows=self.stream._shown().rows)
        return shown


class CacheMode(enum.StrEnum):
    """What an operator node does with its store.

    ``OFF``: compute, store nothing. ``LOG``: compute, and append the rows to the store as
    history. ``REPLAY``: never compute; serve the stored rows (none stored: an empty output).
    """

    OFF = "off"
    LOG = "log"
    REPLAY = "replay"


class OperatorNode(Node):
    """An operator invocation. ``execute(*inputs)`` takes inputs in declared upstream order."""

    node_type: ClassVar[NodeType] = "operator"

    def __init__(
        self,
        stream: ProducedStream,
        upstreams: Sequence[Node],
        label: str,
        *,
        store: Store | None = None,
        cache_mode: CacheMode = CacheMode.OFF,
    ) -> None:
        super().__init__(stream, upstreams, label)
        self.producer: Producer = stream.producer
        self.store = store
        self.cache_mode = CacheMode(cache_mode)

    def execute(self, *streams: Stream, **kwargs: Any) -> TableStream:
        if self.cache_mode is CacheMode.REPLAY:
            output = self.stored_rows()
            self.set_output(output)
            return output
        return self.adopt(self.producer.process(*streams))

    def preview(
        self, *streams: Stream, unknown: Sequence[np.ndarray | None] | None = None
    ) -> TableStream:
        """The rows ``execute(*streams)`` would give, neither kept nor logged (``unknown``:
        see ``Operator.preview``)."""
        if self.cache_mode is CacheMode.REPLAY:
            return self.stored_rows()
        if isinstance(self.producer, PreviewProducer):
            return self.producer.preview(*streams, unknown=unknown)
        return self.producer.process(*streams)

    def adopt(self, output: TableStream) -> TableStream:
        """Keep an output of this node's operator computed elsewhere (an orchestrator that
        streams computes it chunk by chunk), logging its rows in ``LOG`` mode."""
        output.label = self.label
        if self.cache_mode is CacheMode.LOG and self.store is not None:
            self._log_rows(output)
        self.set_output(output)
        return output

    def _kept(self) -> TableStream:
        # Reads never compute, but a REPLAY node serves its stored rows even before a run
        # (LOG and OFF nodes do not expose history: their output is what they computed).
        if self._output is None and self.cache_mode is CacheMode.REPLAY:
            self._output = self.stored_rows()
        return super()._kept()

    def _read_through(self) -> TableStream:
        if self._output is None and self.cache_mode is not CacheMode.REPLAY:
            return self.producer.process(*read_inputs(self))
        return self._kept()

    def stored_rows(self) -> TableStream:
        """The rows stored for this node: those its runs in ``LOG`` mode logged, every run's
        (each once), which ``REPLAY`` serves; none without a store. A read, never a
        computation."""
        stored = self.store.scan(("rows",)) if self.store is not None else None
        if stored is None:
            return empty_output(self)
        tags, _ = self.keys()
        return TableStream(stored.drop_columns([RECORD_ID]), tags, label=self.label)

    def _log_rows(self, output: TableStream) -> None:
        assert self.store is not None
        table = output.as_table(system_tags=True, source_info=True)
        # A row's id is its content, so logging the same rows again adds nothing.
        self.store.write(("rows",), table.append_column(RECORD_ID, row_hash_strings(table)))


class FunctionNode(Node):
    """A function-pod invocation. An execution is ``begin()``, ``execute_batch(chunk)`` per
    input chunk in input order, then ``finish()``, which keeps the output: streaming
    orchestrators drive it chunk by chunk, and ``execute(input)`` drives it over one whole
    input in bounded batches. There is one path, so the two cannot drift apart."""

    node_type: ClassVar[NodeType] = "function"

    def __init__(
        self,
        stream: ProducedStream,
        upstreams: Sequence[Node],
        label: str,
        *,
        result_store: Store | None = None,
        executor: Executor | None = None,
    ) -> None:
        super().__init__(stream, upstreams, label)
        producer = stream.producer
        assert isinstance(producer, FunctionPod)
        self.pod: FunctionPod = producer
        self.result_store = result_store
        self.executor = executor
        #: Calls in flight under the async orchestrator without executors (None: its default).
        self.max_concurrency: int | None = None
        #: The node's scope of the pipeline's store, for provenance records (set at compile).
        self.store: Store | None = None
        #: Rows per status in the last ``execute``.
        self.counts: dict[RowStatus, int] = dict.fromkeys(RowStatus, 0)
        #: Output rows of the last ``execute`` (kept or not).
        self.output_rows = 0
        #: Whether a read served every stored result, its input being unreadable (see
        #: ``_kept``): the nodes below it then cannot read their current input either.
        self.serves_every_result = False
        #: The output being collected (None: not kept, see ``begin``).
        self._parts: SpillBuffer | None = None
        #: What the records know, read as the current execution's chunks ask (None: nothing
        #: to look up, or no execution begun: see ``_begun``).
        self._known: StreamedEntries | None = None
        self._begun = False
        self._memo: ResultCache | None = None
        self._clock = CommitClock()
        self._timeout: float | None = None
        self._recompute = False
        self._stop: threading.Event | None = None
        #: The current input, read for ``stored_output_of`` (until the next execution).
        self._input: TableStream | None = None
        #: Rows whose call replaced a stored result in the last ``execute`` (see ``reasons``).
        self.recomputed = 0

    def execute(
        self,
        stream: Stream,
        *,
        observer: NodeObserver | None = None,
        error_policy: ErrorPolicy = "continue",
        executor: Executor | None = None,
        commit_seconds: float = COMMIT_SECONDS,
        timeout: float | None = None,
        recompute: bool = False,
        keep_output: bool = True,
        **kwargs: Any,
    ) -> TableStream:
        # One path for whole inputs and streamed chunks: the input is read in bounded batches
        # (a chunked input, such as a file source, is never held whole), and records are
        # written and packet hooks fire batch by batch (the pod itself computes and stores
        # in smaller batches).
        self.begin(
            commit_seconds=commit_seconds,
            timeout=timeout,
            recompute=recompute,
            keep_output=keep_output,
        )
        for batch in stream_chunks(stream, NODE_BATCH):
            table = batch.as_table(system_tags=True, source_info=True)
            rows = TableStream(table, batch.keys()[0], label=self.label)
            self._add(self._run_batch(rows, self._lookup(rows), observer, error_policy, executor))
        return self.finish()

    # Incremental execution, for orchestrators that stream (and ``execute``): ``begin()``,
    # then ``execute_batch(chunk)`` per input chunk in input order, then ``finish()``.
    def begin(
        self,
        *,
        commit_seconds: float = COMMIT_SECONDS,
        timeout: float | None = None,
        recompute: bool = False,
        stop: threading.Event | None = None,
        keep_output: bool = True,
    ) -> None:
        """Start a new execution: counts and collected output are reset. Finished calls are
        committed at least every ``commit_seconds``; ``timeout`` limits each call where the
        pod sets no limit; ``recompute`` runs every call again, replacing stored results;
        once ``stop`` is set, no call starts any more (``RunCancelledError``) and what
        finished is committed. ``keep_output=False``: nobody reads the output of this
        execution, so where the store can serve it again it is not collected (``finish``
        gives zero rows, ``output_rows`` counts them; reads serve the stored results)."""
        self.check_code()
        self.counts = dict.fromkeys(RowStatus, 0)
        self.recomputed = 0
        self.output_rows = 0
        self._recompute = recompute
        self._stop = stop
        self._output = None
        self._input = None
        self.serves_every_result = False
        keep_output = keep_output or self.store is None or self.result_store is None
        self._parts = SpillBuffer() if keep_output else None
        self._clock = CommitClock(commit_seconds)
        self._timeout = timeout
        # One memo for all the execution's batches, read at most once (see ResultCache).
        self._memo = (
            ResultCache(self.result_store, self.pod.packet_function, preload=True)
            if self.result_store is not None
            else None
        )
        # What the records know is read once per execution, a piece at a time as the chunks
        # ask, in the background: the reads release the GIL, so they overlap with hashing the
        # entry ids (a lookup per chunk would read the stored tables each time, costing
        # chunks x stored rows).
        records = self.records
        self._known = None if records is None or recompute else StreamedEntries(records)
        self._begun = True

    def execute_batch(
        self,
        batch: Stream,
        *,
        observer: NodeObserver | None = None,
        error_policy: ErrorPolicy = "continue",
        executor: Executor | None = None,
    ) -> TableStream:
        """Execute one chunk of the input (after ``begin()``): serve what the records know,
        compute the rest, fire the packet hooks; returns the chunk's output."""
        if not self._begun:
            raise PipelineError(
                f"node {self.label!r}: execute_batch() before begin(); an execution is "
                f"begin(), execute_batch() per chunk, finish()"
            )
        tags, _ = batch.keys()
        table = TableStream(
            batch.as_table(system_tags=True, source_info=True), tags, label=self.label
        )
        result = self._run_batch(table, self._lookup(table), observer, error_policy, executor)
        self._add(result)
        return result.stream

    def _lookup(self, rows: TableStream) -> _Known:
        """The entry ids of ``rows`` and what the records know of them (once begun)."""
        entry_ids = self.entry_ids(rows) if self.store is not None else None
        found = _nothing_found(len(rows))
        if self._known is not None and entry_ids is not None and len(rows):
            found = self._known.find(entry_ids)
        return _Known(entry_ids, found)

    def finish(self) -> TableStream:
        """End an execution: the collected output becomes the node's output (one held in
        memory, or read back from a spill file when large: see ``SpillBuffer``)."""
        empty = empty_output(self)
        if self._parts is None:
            output = empty
        else:
            output = self._parts.result(empty)
            output.label = self.label
            self.set_output(output)
        self._parts = None
        if self._known is not None:
            self._known.close()
        self._known = None
        self._memo = None
        self._begun = False
        return output

    def release_output(self) -> None:
        """Let go of the kept output if the store serves it again (reads then give the
        stored results of the current input, as in a fresh process)."""
        if self.store is not None and self.result_store is not None:
            self._output = None

    def _add(self, result: PodResult) -> None:
        for status in RowStatus:
            self.counts[status] += result.count(status)
        self.recomputed += len(result.reasons)
        self.output_rows += len(result.stream)
        if self._parts is not None:
            self._parts.add(result.stream)

    def _run_batch(
        self,
        batch: TableStream,
        known: _Known,
        observer: NodeObserver | None,
        error_policy: ErrorPolicy,
        executor: Executor | None,
    ) -> PodResult:
        """Serve what the records know, run the rest, in input order (one batch).

        Calls that finish in an early window of the durability clock are recorded and
        reported (and committed) as they finish (``report``); the rest when the batch ends.
        """
        # The observer the packet hooks go to (None: nobody watches packets).
        watcher = observer if observer is not None and observer.observes_packets else None
        hooks = watcher is not None
        started = np.zeros(len(batch), dtype=bool)
        reported = np.zeros(len(batch), dtype=bool)
        node_hash = str(self.content_hash())

        def start(rows: np.ndarray) -> None:
            # A packet's start fires just before the batch of calls that computes it.
            started[rows] = True
            assert watcher is not None  # (only called with hooks)
            watcher.on_packets_start(
                node_label=self.label, node_hash=node_hash, batch=PacketBatch(batch, rows)
            )

        records = self.records
        entry_ids, found = known
        misses = np.flatnonzero(~found.found)
        todo = _take(batch, misses)

        def report(rows: np.ndarray, part: PodResult, commit: bool) -> None:
            # An early window of finished calls: recorded and reported before the rest.
            rows_in_batch = misses[rows]
            if records is not None and entry_ids is not None:
                picked = pa.array(rows_in_batch, pa.int64())
                _write_records(records, _take(batch, rows_in_batch), entry_ids.take(picked), part)
            if watcher is not None:
                outcomes = _outcomes(batch, part, started, rows_in_batch)
                watcher.on_packets_end(node_label=self.label, node_hash=node_hash, batch=outcomes)
            reported[rows_in_batch] = True
            if commit:
                self._commit(observer, node_hash)

        computed = self.pod.execute(
            todo,
            executor=self.executor or executor,  # a node's own executor wins
            result_store=self.result_store,
            memo=self._memo,
            on_error="continue",
            keep_captures=hooks,
            before_calls=(lambda todo_rows: start(misses[todo_rows])) if hooks else None,
            timeout=self._timeout,
            clock=self._clock,
            report=report,
            recompute=self._recompute,
            stop=self._stop,
            fail_fast=error_policy == "fail_fast",
        )
        overwritten: dict[int, FunctionCallError] = {}
        if self._memo is not None and self._memo.written and found.found.any():
            found, overwritten = self._served_overwritten(batch, found, misses, computed)
        # Storing what finished is not to be cut short by Ctrl-C (see deferred_interrupts).
        with deferred_interrupts():
            result = _merge(batch, found, misses, computed, overwritten)
            rest = np.flatnonzero(~reported)
            if records is not None and entry_ids is not None and len(todo):
                unreported = np.flatnonzero(~reported[misses])
                if len(unreported) == len(misses):  # nothing was reported early
                    picked = pa.array(misses, pa.int64())
                    _write_records(records, todo, entry_ids.take(picked), computed)
                elif len(unreported):
                    part = _part_of(computed, unreported)
                    rows = pa.array(misses[unreported], pa.int64())
                    _write_records(
                        records, _take(batch, misses[unreported]), entry_ids.take(rows), part
                    )
            if watcher is not None and len(rest):
                outcomes = _outcomes(
                    batch, result, started, None if len(rest) == len(batch) else rest
                )
                watcher.on_packets_end(node_label=self.label, node_hash=node_hash, batch=outcomes)
            if self._clock.reported(time.time()):
                self._commit(observer, node_hash)
        if result.errors and error_policy == "fail_fast":
            raise result.errors[min(result.errors)]
        for row, error in sorted(result.errors.items()):
            _log.warning("%s: row %d failed and was skipped: %s", self.label, row, error)
        # Arrow's allocator keeps what the batch freed for reuse; handing it back to the
        # operating system keeps the process's footprint at what is live (it costs µs).
        pa.default_memory_pool().release_unused()
        return result

    def _served_overwritten(
        self, batch: TableStream, found: Found, misses: np.ndarray, computed: PodResult
    ) -> tuple[Found, dict[int, FunctionCallError]]:
        """``found`` without the rows whose output files a call of this run overwrote
        after they were stored (it returned the same file: see ``output_files``), and those
        rows' errors: served, they would name another call's content. Only rows naming a
        file a call of this run returned (``ResultCache.written``) are looked at; the memo
        says whether such a file still holds what was stored. (A call of a later batch
        writing a file that a row served earlier names is seen by the next run.)"""
        fn = self.pod.packet_function
        assert self._memo is not None  # (checked by the caller)
        written = self._memo.written
        served = np.flatnonzero(found.found & ~found.skipped)
        suspects: list[tuple[int, int, str]] = []  # (output row, batch row, path)
        for at, paths in enumerate(paths_by_row(found.outputs)):
            named = next((p for p in paths if p in written), None)
            if named is not None:
                suspects.append((at, int(served[at]), named))
        if not suspects:
            return found, {}
        rows = np.array([row for _, row, _ in suspects], dtype=np.int64)
        gone = self.pod.unserved(_take(batch, rows), memo=self._memo)
        if not gone.any():
            return found, {}
        # The calls of this batch that returned each file (for the message; those of
        # earlier batches are not named).
        produced = np.isin(computed.codes, [_CODE[RowStatus.COMPUTED], _CODE[RowStatus.CACHED]])
        ran = computed.computed[produced]
        outputs = computed.stream.as_table().select(list(fn.output_keys))
        writer: dict[str, int] = {}
        ran_rows = misses[produced][ran].tolist()
        for row, paths in zip(ran_rows, paths_by_row(outputs.filter(ran)), strict=True):
            for path in paths:
                writer.setdefault(path, row)
        errors: dict[int, FunctionCallError] = {}
        keep = np.ones(len(served), dtype=bool)
        tags = batch.as_table().select(list(batch.keys()[0]))
        for (at, row, path), lost in zip(suspects, gone.tolist(), strict=True):
            if not lost:
                continue
            keep[at] = False
            by = writer.get(path)
            error = overwritten_error(
                fn.name,
                path,
                _tag_of(batch, tags, row),
                None if by is None else _tag_of(batch, tags, by),
                served=True,
            )
            errors[row] = call_failure(fn.name, _tag_of(batch, tags, row), error)
        still = found.found.copy()
        still[list(errors)] = False
        return Found(still, found.skipped, found.outputs.filter(pa.array(keep))), errors

    def _commit(self, observer: NodeObserver | None, node_hash: str) -> None:
        """Make what finished so far durable: results, then records, then what observers
        buffered about them (status and log rows)."""
        for store in (self.result_store, self.store):
            if store is not None:
                store.flush()
        if observer is not None:
            observer.on_commit(node_label=self.label, node_hash=node_hash)

    @property
    def pod_executor(self) -> Executor | None:
        """The executor of the node's pod, if it has one of its own."""
        return self.pod.executor

    @property
    def is_async(self) -> bool:
        """Whether the node's function is ``async def``."""
        return self.pod.packet_function.is_async

    def invalidate(self, **tag_values: Any) -> int:
        """Forget this node's stored results for the rows whose tags equal ``tag_values``
        (every row without any), so that the next run computes them again; returns how many
        rows were forgotten. Their results leave the function's memo too, for every
        pipeline that shares it."""
        records = self.records
        if records is None:
            raise PipelineError(f"node {self.label!r} has no store: there is nothing to forget")
        tags, _ = self.keys()
        unknown = sorted(set(tag_values) - set(tags))
        if unknown:
            raise InputValidationError(
                f"node {self.label!r} has no tag column(s) {format_names(unknown)}; "
                f"its tags are {format_names(tags)}"
            )
        forgotten = records.forget(tag_values)
        for store in (self.result_store, self.store):
            if store is not None:
                store.flush()
        self._output = None  # what it kept may hold forgotten rows
        return forgotten

    def preview(self, stream: Stream, *, recompute: bool = False) -> NodePreview:
        """What ``execute(stream, recompute=recompute)`` would do with each row, calling
        nothing and writing nothing (``podline.nodes.preview``)."""
        self.check_code()
        return preview_rows(self, stream, recompute=recompute)

    def check_code(self) -> None:
        """Raise ``FunctionIdentityError`` if the code the function uses changed since the
        node was built (``FunctionPodStream.check_code``): a notebook cell defined a helper
        or a constant anew, and the node's identity is not that of the code that would run."""
        if isinstance(self.stream, FunctionPodStream):
            self.stream.check_code(self.label)

    @property
    def records(self) -> ProvenanceRecords | None:
        """The node's provenance records (None without a store)."""
        if self.store is None:
            return None
        # During an execution, the records resolve through the execution's memo, which
        # then serves the batches too: the memo is read once.
        return ProvenanceRecords(
            self.store, self.pod.packet_function, self.result_store, memo=self._memo
        )

    def entry_ids(self, stream: Stream) -> pa.Array:
        """The entry id of every row of an input stream (see ``records``)."""
        tags, packets = stream.keys(system_tags=True)
        return ProvenanceRecords.entry_ids(stream.as_table(system_tags=True), [*tags, *packets])

    def get_cached_results(self, entry_ids: Sequence[str]) -> dict[str, tuple[Tag, Packet]]:
        """The stored outputs of these input entries: ``{entry id: (tag, output packet)}``.

        Only entries with a stored, non-skipped result appear; nothing is computed.
        """
        records = self.records
        tags, _ = self.keys()
        found = records.output(tags, list(entry_ids)) if records and entry_ids else None
        if found is None:
            return {}
        ids, stream = found
        return dict(zip(ids.to_pylist(), stream.iter_packets(), strict=True))

    @property
    def store_path(self) -> tuple[str, ...]:
        """Records are keyed by label, pipeline hash and the pod's own content hash (its
        function's code and version), not by the node's content hash: an entry id already
        names the whole input row, so records of one function stay valid when the input
        data change, and a source that grows each run adds rows, not a table per run."""
        return (self.label, self.pipeline_hash().short(16), self.pod.content_hash().short(16))

    def _kept(self) -> TableStream:
        # Before a run, the stored results of the current input: the entries of what the
        # upstream reads (records of other input versions share the table).
        records = None if self._output is not None else self.records
        if records is not None:
            upstream: NodeOutput | None
            try:
                (upstream,) = read_inputs(self)
            except ReadOnlyNodeError:
                # An input that cannot be read (a loaded pipeline's source built from data
                # in memory, see podline.pipeline.loading).
                upstream = None
            if upstream is None or _reads_every_result(self):
                # No current input to look up, or one read from a function node above that
                # serves every result it stored (every input version it saw, whose batches
                # or joins are none of the inputs this node saw): every stored result, of
                # the sources' stored versions where they are known.
                tags, _ = self.keys()
                found = records.output(tags)
                self._output = None if found is None else _of_stamped(self, found[1])
                self.serves_every_result = True
            else:
                self._output = self._stored_output(upstream, records)
                self.serves_every_result = False
        return super()._kept()

    def _stored_output(self, upstream: Stream, records: ProvenanceRecords) -> TableStream | None:
        """The stored results of the rows of ``upstream`` (those whose record and result are
        stored; None if there are none), built as a cached run builds its output: chunk by
        chunk, each found among what the records know (``StreamedEntries``), with the
        input's own tags. Nothing is computed, and of the records only their ids and statuses
        are read."""
        known = StreamedEntries(records, name="podline-read")
        try:
            return self._found_output(upstream, known.find)
        finally:
            known.close()

    def stored_output_of(self, pick: Callable[[pa.Table], pa.Table]) -> TableStream | None:
        """What a read of this node gives for the rows of its current input that ``pick``
        keeps (given the input as a table with system tags and source info; rows picked by
        their tags and system tags, which the node passes through): the rows a whole read
        would give for them, their results looked up by entry id. A few rows cost a read of
        the input (kept until the node's next execution, for the next pick) and a few
        lookups, not a lookup of every input row (``as_table``): lineage asks so
        (``podline.pipeline.lineage``). Nothing is computed. None where a read of the node
        does not look its input up (a loaded pipeline's read-only source, or a node above
        serving every result it stored): then that read says what the node gives."""
        records = self.records
        if records is None:
            return empty_output(self)
        if self._input is None:
            try:
                (upstream,) = read_inputs(self)
            except ReadOnlyNodeError:
                return None
            if _reads_every_result(self):
                return None  # (a read serves every stored result, not those of an input)
            self._input = upstream.rows
        table = pick(self._input.as_table(system_tags=True, source_info=True))
        rows = TableStream(table, self._input.keys()[0], types=_types([self._input]))
        found = self._found_output(rows, records.find)
        return empty_output(self) if found is None else found

    def set_output(self, stream: TableStream) -> None:
        self._input = None  # (a run, or a load: the next pick reads the input again)
        super().set_output(stream)

    def _found_output(
        self, upstream: Stream, find: Callable[[pa.Array], Found]
    ) -> TableStream | None:
        parts, rows = SpillBuffer(), 0
        nothing = np.zeros(0, dtype=np.int64)
        for chunk in stream_chunks(upstream, NODE_BATCH):
            table = chunk.as_table(system_tags=True, source_info=True)
            batch = TableStream(table, chunk.keys()[0], label=self.label)
            found = find(self.entry_ids(batch))
            hits = _take(batch, np.flatnonzero(found.found & ~found.skipped))
            if not len(hits):
                continue
            every = np.ones(len(hits), dtype=bool)
            found = Found(every, ~every, found.outputs)
            parts.add(_merge(hits, found, nothing, self.pod.execute(_take(hits, nothing))).stream)
            rows += len(hits)
        if not rows:
            parts.discard()
            return None
        output = parts.result(empty_output(self))
        output.label = self.label
        return output


@runtime_checkable
class StampedSource(Protocol):
    """A source that cannot be read again but knows the source id its rows were stamped with
    (a loaded pipeline's read-only source, ``podline.pipeline.stand_ins.StoredSource``): a
    function node below it, which then serves every result it stored, keeps those of the
    rows that source id stamped."""

    @property
    def stamped_source_id(self) -> str | None:
        """The source id of the rows the stored run read; None if it is not known."""
        ...


def _of_stamped(node: Node, output: TableStream) -> TableStream | None:
    """The rows of ``output`` (every result ``node`` stored) that the stamped sources above
    it gave (``StampedSource``): results of other versions of a source's data (a file that
    grew between runs: its default source id, and with it every row's entry, changes) are
    left out. A system tag column holding lists (a batch's) is not compared."""
    ids: dict[str, str] = {}
    pending, seen = list(node.upstreams), set()
    while pending:
        upstream = pending.pop()
        if id(upstream) in seen:
            continue
        seen.add(id(upstream))
        pending.extend(upstream.upstreams)
        stream = upstream.stream
        if is_source_node(upstream) and isinstance(stream, StampedSource):
            source_id = stream.stamped_source_id
            if source_id is not None:
                ids[source_lineage(upstream.pipeline_hash().hex)] = source_id
    if not ids:
        return output
    table = output.as_table(system_tags=True, source_info=True)
    keep = np.ones(table.num_rows, dtype=bool)
    for name in table.column_names:
        if not is_system_tag(name):
            continue
        tag = parse_system_tag(name)
        column = table.column(name)
        if tag.kind != "source_id" or tag.source_lineage not in ids:
            continue
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            continue
        same = pc.fill_null(pc.equal(column, ids[tag.source_lineage]), False)
        keep &= same.to_numpy(zero_copy_only=False)
    if keep.all():
        return output
    return _take(output, np.flatnonzero(keep)) if keep.any() else None


def _reads_every_result(node: Node) -> bool:
    """Whether a function node above ``node`` (the nearest on each path) served every result
    it stored (``FunctionNode.serves_every_result``) to the read just made."""
    for upstream in node.upstreams:
        if isinstance(upstream, FunctionNode):
            if upstream.serves_every_result:
                return True
        elif _reads_every_result(upstream):
            return True
    return False


def read_inputs(node: Node) -> list[NodeOutput]:
    """A node's current input without calling a function: what each upstream reads through
    (``Node._read_through``), in declared order, keeping its node's identity as an
    orchestrator's buffers do."""
    return [NodeOutput(upstream, upstream._read_through()) for upstream in node.upstreams]


_STATUS_NAMES = np.array([status.value for status in RowStatus], dtype=object)
_CODE = {status: index for index, status in enumerate(RowStatus)}
_FAILED = _CODE[RowStatus.FAILED]


class _Known(NamedTuple):
    """A batch's entry ids (None without records) and what the records know of it."""

    entry_ids: pa.Array | None
    found: Found

    def slice(self, start: int, length: int) -> _Known:
        ids = None if self.entry_ids is None else self.entry_ids.slice(start, length)
        return _Known(ids, self.found.slice(start, length))


def _tag_of(batch: TableStream, tags: pa.Table, row: int) -> Tag:
    """The tag of one row of ``batch`` (``tags``: its tag columns)."""
    types, _ = batch.output_schema()
    return Tag(tags.slice(row, 1).to_pylist()[0], types, validate=False)


def _nothing_found(n: int) -> Found:
    none = np.zeros(n, dtype=bool)
    return Found(none, none, pa.table({}))


def _write_records(
    records: ProvenanceRecords,
    batch: TableStream,
    entry_ids: pa.Array,
    result: PodResult,
) -> None:
    """Record the rows of ``batch`` that did not fail (``result`` speaks of the same rows)."""
    tags, _ = batch.keys(system_tags=True)
    kept = pa.array(result.codes != _FAILED)
    statuses = pa.array(_STATUS_NAMES[result.codes], pa.large_string())
    records.write(
        batch.as_table(system_tags=True).select(list(tags)).filter(kept),
        entry_ids=entry_ids.filter(kept),
        packet_hashes=batch.packet_hashes().filter(kept),
        result_ids=result.argument_hashes.filter(kept),
        statuses=statuses.filter(kept),
    )


def _part_of(result: PodResult, rows: np.ndarray) -> PodResult:
    """The codes and argument hashes of ``result`` for ``rows`` (what records need)."""
    return PodResult(
        result.stream,
        result.codes[rows],
        argument_hashes=result.argument_hashes.take(pa.array(rows, pa.int64())),
    )


def _outcomes(
    batch: TableStream, result: PodResult, started: np.ndarray, rows: np.ndarray | None
) -> PacketOutcomes:
    """What observers learn of ``rows`` of ``batch`` (None: all of them), of which
    ``result`` speaks: of exactly those rows for an early part, of the whole batch else."""
    if rows is None or len(result.codes) == len(rows):
        return PacketOutcomes(
            batch,
            rows,
            codes=result.codes,
            computed=result.computed,
            started=started if rows is None else started[rows],
            errors=result.errors,
            captures=result.captures,
            call_times=result.call_times,
            outputs=result.stream,
            reasons=result.reasons,
        )
    # The rest of a batch whose other rows were reported early.
    produced = np.flatnonzero(result.codes <= _CODE[RowStatus.CACHED])
    keep = np.isin(produced, rows)
    position = {row: i for i, row in enumerate(rows.tolist())}
    outputs = result.stream.as_table(system_tags=True, source_info=True).filter(pa.array(keep))
    tags, _ = result.stream.keys()
    return PacketOutcomes(
        batch,
        rows,
        codes=result.codes[rows],
        computed=result.computed[rows],
        started=started[rows],
        errors={position[r]: e for r, e in result.errors.items() if r in position},
        captures={position[r]: c for r, c in result.captures.items() if r in position},
        call_times=None if result.call_times is None else result.call_times[rows],
        outputs=TableStream(outputs, tags, label=batch.label, types=_types([result.stream])),
        reasons={position[r]: why for r, why in result.reasons.items() if r in position},
    )


def _take(batch: TableStream, rows: np.ndarray) -> TableStream:
    if len(rows) == len(batch):
        return batch
    tags, _ = batch.keys()
    table = batch.as_table(system_tags=True, source_info=True).take(pa.array(rows, pa.int64()))
    return TableStream(table, tags, label=batch.label, types=_types([batch]))


def _merge(
    batch: TableStream,
    found: Found,
    misses: np.ndarray,
    computed: PodResult,
    failed: dict[int, FunctionCallError] | None = None,
) -> PodResult:
    """One result for the whole batch: found rows (cached or skipped), computed ones, and
    the rows found that ``failed`` after all (by batch row; left out of ``found``)."""
    n = len(batch)
    codes = np.full(n, _CODE[RowStatus.CACHED], dtype=np.int8)
    codes[found.skipped] = _CODE[RowStatus.SKIPPED]
    codes[misses] = computed.codes
    if failed:
        codes[list(failed)] = _CODE[RowStatus.FAILED]
    ran = np.zeros(n, dtype=bool)
    ran[misses] = computed.computed
    # Output rows: found-and-produced rows, then computed rows that produced output, merged
    # back into input order.
    found_rows = np.flatnonzero(found.found & ~found.skipped)
    produced = np.isin(computed.codes, [_CODE[RowStatus.COMPUTED], _CODE[RowStatus.CACHED]])
    computed_rows = misses[produced]
    tags, _ = batch.keys()
    tag_names, _ = batch.keys(system_tags=True)
    stored = batch.as_table(system_tags=True).select(list(tag_names))
    parts = [computed.stream.as_table(system_tags=True, source_info=True)]
    if len(found_rows):
        hits = stored.take(pa.array(found_rows, pa.int64()))
        for name in found.outputs.column_names:
            hits = hits.append_column(name, found.outputs.column(name))
        parts.insert(0, table_with_schema(hits.select(parts[0].column_names), parts[0].schema))
    if len(found_rows) and len(computed_rows):
        order = np.argsort(np.concatenate([found_rows, computed_rows]), kind="stable")
        table = pa.concat_tables(parts).take(pa.array(order, pa.int64()))
    else:  # one part, already in input order
        table = parts[0]
    types = _types([computed.stream])
    stream = TableStream(table, tags, label=batch.label, types=types)
    times = computed.call_times
    if len(misses) == n:  # every row went to the pod: its rows are the batch's rows
        errors, captures, reasons = computed.errors, computed.captures, computed.reasons
    else:
        rows = misses.tolist()
        errors = {rows[i]: e for i, e in computed.errors.items()}
        captures = {rows[i]: c for i, c in computed.captures.items()}
        reasons = {rows[i]: r for i, r in computed.reasons.items()}
        if times is not None:
            times = np.full((n, 2), np.nan)
            times[misses] = computed.call_times
    if failed:
        errors = {**errors, **failed}
    return PodResult(stream, codes, errors, captures, ran, call_times=times, reasons=reasons)


def _types(parts: list[TableStream]) -> dict[str, Any]:
    tags, packets = parts[0].output_schema()
    return {**tags, **packets}
