"""Streaming operators: how the async orchestrator moves chunks and runs operator nodes.

This module owns

* the **channels** of an async run: a ``Channel`` is one edge of the graph, a bounded queue of
  chunks (``TableStream``s of up to ``chunk_rows`` rows) ended by the ``END`` marker; an
  ``Outlet`` broadcasts a node's chunks to every edge leaving it (fan-out) and holds back
  empty chunks, so an edge carries at least one chunk (empty if need be, typed as the
  operator or function computed it) and no other empty ones;
* the **choice of strategy** for an operator node, asked of its operator (``strategy_for``):
  per-chunk (select, drop, map, filter), build-then-probe (``SemiJoin``), a symmetric hash
  join (two-input ``Join``), fixed-size batches (``Batch(batch_size > 0)``), else a barrier
  (collect every input, then ``node.execute``). An operator class may declare its own with a
  ``streaming_strategy(inputs)`` method (``StreamingOperator``);
* **ordering**: a streaming join emits rows as chunks meet, so its row order differs from a
  sync run's; an operator whose *set* of output rows depends on the order of its input rows
  (``Batch``, and any operator this module does not know) must see sync order, so the joins
  upstream of one fall back to the barrier (``plan_operators``);
* ``run_operator``: one operator node's run over its input channels. Every strategy reads all
  of its inputs at once (chunks a strategy cannot use yet are buffered), so a node never
  stops reading one input while it waits for another: that, with acyclic graphs, is what
  makes bounded channels deadlock-free. Inputs are given to the operator in the node's
  declared upstream order, each chunk wrapped as ``NodeOutput(upstream, chunk)`` so that it
  keeps the upstream's identity (system-tag names then match a sync run's). At the end the
  node adopts its whole output (``node.adopt``), so it holds its rows after the run and logs
  them in LOG mode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import pyarrow as pa

from podline.nodes import CacheMode, NodeOutput, is_operator_node
from podline.nodes.base import empty_output
from podline.operators import StreamingStrategy
from podline.pipeline.graph import PipelineGraph
from podline.streams import Stream, TableStream

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "END",
    "Channel",
    "Offload",
    "Outlet",
    "StreamingOperator",
    "StreamingStrategy",
    "concat_chunks",
    "head",
    "order_sensitive",
    "plan_operators",
    "run_operator",
    "slices",
    "strategy_for",
    "tail",
]

#: Runs a blocking callable off the event loop and awaits its result.
Offload = Callable[..., Awaitable[Any]]


class _End:
    """The end-of-stream marker's type (one instance: ``END``)."""

    def __repr__(self) -> str:
        return "END"


END: Final = _End()


class Channel:
    """One edge: a bounded queue of chunks, closed by ``END``. A full queue makes the
    sender wait (backpressure)."""

    def __init__(self, size: int) -> None:
        import asyncio

        self._queue: asyncio.Queue[TableStream | _End] = asyncio.Queue(maxsize=size)
        self._ended = False

    async def send(self, chunk: TableStream) -> None:
        await self._queue.put(chunk)

    async def close(self) -> None:
        await self._queue.put(END)

    async def receive(self) -> TableStream | _End:
        """The next chunk, or ``END``."""
        return await self._queue.get()

    async def receive_up_to(self, rows: int) -> list[TableStream] | None:
        """The next chunk and those already waiting behind it, up to ``rows`` rows in all
        (small chunks travel together without waiting for more); None at the end."""
        if self._ended:
            return None
        first = await self._queue.get()
        if isinstance(first, _End):
            self._ended = True
            return None
        return [first, *self.ready_up_to(rows - len(first))]

    def ready_up_to(self, rows: int) -> list[TableStream]:
        """The chunks already waiting, up to about ``rows`` rows (never waits)."""
        chunks: list[TableStream] = []
        total = 0
        while total < rows and not self._ended and not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, _End):
                self._ended = True
                break
            chunks.append(item)
            total += len(item)
        return chunks


class Outlet:
    """A node's output side: broadcasts chunks to every edge leaving the node.

    Empty chunks are held back: the last one is sent at ``close`` only if nothing else was,
    so consumers always get at least one (typed) chunk.
    """

    def __init__(self, channels: Sequence[Channel]) -> None:
        self.channels = tuple(channels)
        self._sent = False
        self._empty: TableStream | None = None

    async def emit(self, chunk: TableStream) -> None:
        if not len(chunk):
            self._empty = chunk
            return
        self._sent = True
        # One consumer at a time: a full edge holds the others back too. That is the
        # backpressure of a broadcast; every consumer keeps reading, so it never deadlocks.
        for channel in self.channels:
            await channel.send(chunk)

    async def close(self) -> None:
        if not self._sent and self._empty is not None:
            for channel in self.channels:
                await channel.send(self._empty)
        for channel in self.channels:
            await channel.close()


def slices(stream: TableStream, rows: int) -> Iterator[TableStream]:
    """``stream`` cut into chunks of at most ``rows`` rows (one empty chunk if it is empty)."""
    if len(stream) <= rows:
        yield stream
        return
    tags, _ = stream.keys()
    table = stream.as_table(system_tags=True, source_info=True)
    types = _types(stream)
    for start in range(0, table.num_rows, rows):
        yield TableStream(table.slice(start, rows), tags, label=stream.label, types=types)


def concat_chunks(chunks: Sequence[TableStream], label: str) -> TableStream:
    """One stream of every row of ``chunks`` (at least one), in order."""
    if len(chunks) == 1:
        return chunks[0]
    tags, _ = chunks[0].keys()
    tables = [c.as_table(system_tags=True, source_info=True) for c in chunks]
    return TableStream(pa.concat_tables(tables), tags, label=label, types=_types(chunks[0]))


def _types(stream: TableStream) -> dict[str, Any]:
    # Declared Python types (dataclasses, ...) that Arrow types alone cannot give back.
    tags, packets = stream.output_schema()
    return {**tags, **packets}


# ---------------------------------------------------------------------------- strategies


@runtime_checkable
class StreamingOperator(Protocol):
    """An operator that says how it can stream over ``inputs`` inputs (a
    ``StreamingStrategy`` or its value), and whether the set of rows it outputs may depend on
    the order of its input rows. Every ``podline.operators.Operator`` is one."""

    order_sensitive: bool

    def streaming_strategy(self, inputs: int) -> StreamingStrategy | str: ...


def strategy_for(operator: object, inputs: int) -> StreamingStrategy:
    """How an operator applied to ``inputs`` inputs can stream (the barrier if it does not
    say)."""
    if isinstance(operator, StreamingOperator):
        return StreamingStrategy(operator.streaming_strategy(inputs))
    return StreamingStrategy.BARRIER


def order_sensitive(operator: object) -> bool:
    """Whether the set of rows ``operator`` outputs may depend on its input rows' order
    (assumed for operators that do not say)."""
    return not isinstance(operator, StreamingOperator) or bool(operator.order_sensitive)


def plan_operators(graph: PipelineGraph) -> dict[int, StreamingStrategy]:
    """The strategy of every operator node of ``graph``, by ``id(node)``.

    A streaming join changes row order, so it falls back to the barrier when an
    order-sensitive operator reads its output, directly or through nodes that pass row
    order on (all of them are assumed to). REPLAY nodes never compute: barrier.
    """
    needs_order: dict[int, bool] = {}
    for node in reversed(graph.nodes):
        needs_order[id(node)] = any(
            (is_operator_node(c) and order_sensitive(getattr(c, "producer", None)))
            or needs_order[id(c)]
            for c in graph.successors(node)
        )
    plans: dict[int, StreamingStrategy] = {}
    for node in graph:
        if not is_operator_node(node):
            continue
        if getattr(node, "cache_mode", None) is CacheMode.REPLAY:
            plans[id(node)] = StreamingStrategy.BARRIER
            continue
        producer = getattr(node, "producer", None)
        strategy = strategy_for(producer, len(node.upstreams))
        if not _fits(strategy, producer, len(node.upstreams)) or (
            strategy is StreamingStrategy.SYMMETRIC_JOIN and needs_order[id(node)]
        ):
            strategy = StreamingStrategy.BARRIER
        plans[id(node)] = strategy
    return plans


def _fits(strategy: StreamingStrategy, operator: object, inputs: int) -> bool:
    """Whether ``strategy`` can run ``operator`` over ``inputs`` inputs at all."""
    if strategy in (StreamingStrategy.PER_CHUNK, StreamingStrategy.FIXED_BATCH):
        size = getattr(operator, "batch_size", None)
        fixed = isinstance(size, int) and size > 0
        return inputs == 1 and (strategy is StreamingStrategy.PER_CHUNK or fixed)
    if strategy in (StreamingStrategy.BUILD_PROBE, StreamingStrategy.SYMMETRIC_JOIN):
        return inputs == 2
    return True


# ---------------------------------------------------------------------------- running


async def _read_all(
    channels: Sequence[Channel],
    on_chunk: Callable[[int, TableStream], Awaitable[None]],
    on_end: Callable[[int], Awaitable[None]],
) -> None:
    """Read every channel at once, handing each chunk (and each input's end) to the
    callbacks one at a time, chunks of one input in their order."""
    import asyncio

    if len(channels) == 1:
        (channel,) = channels
        while not isinstance(item := await channel.receive(), _End):
            await on_chunk(0, item)
        await on_end(0)
        return
    # One reader per input feeds a shared queue of size 1: every input keeps moving, and
    # the node's own pace still holds its inputs back.
    merged: asyncio.Queue[tuple[int, TableStream | _End]] = asyncio.Queue(maxsize=1)

    async def pump(index: int, channel: Channel) -> None:
        while True:
            item = await channel.receive()
            await merged.put((index, item))
            if isinstance(item, _End):
                return

    async with asyncio.TaskGroup() as readers:
        for index, channel in enumerate(channels):
            readers.create_task(pump(index, channel))
        remaining = len(channels)
        while remaining:
            index, item = await merged.get()
            if isinstance(item, _End):
                remaining -= 1
                await on_end(index)
            else:
                await on_chunk(index, item)


class _OperatorRun:
    """The state of one operator node's run (see ``run_operator``)."""

    def __init__(
        self,
        node: Any,
        inputs: Sequence[Channel],
        outlet: Outlet,
        offload: Offload,
        chunk_rows: int,
    ) -> None:
        self.node = node
        self.producer = node.producer
        self.upstreams: tuple[Any, ...] = tuple(node.upstreams)
        self.inputs = inputs
        self.outlet = outlet
        self.offload = offload
        self.chunk_rows = chunk_rows
        self.parts: list[TableStream] = []
        #: Per input, a zero-row chunk as it arrived: typed exactly like the real input.
        self.templates: list[TableStream | None] = [None] * len(self.upstreams)

    def wrap(self, index: int, rows: TableStream) -> NodeOutput:
        """``rows`` of input ``index`` with that upstream's identity."""
        return NodeOutput(self.upstreams[index], rows)

    def note(self, index: int, chunk: TableStream) -> None:
        if self.templates[index] is None:
            self.templates[index] = chunk if not len(chunk) else head(chunk, 0)

    def whole(self, index: int, chunks: Sequence[TableStream]) -> TableStream:
        """Every row input ``index`` delivered."""
        template = self.templates[index]
        if chunks:
            return concat_chunks(chunks, self.upstreams[index].label)
        return template if template is not None else empty_output(self.upstreams[index])

    async def process(self, *inputs: Stream) -> None:
        output = await self.offload(self.producer.process, *inputs)
        self.parts.append(output)
        await self.outlet.emit(output)

    async def finish(self) -> TableStream:
        """The node adopts its whole output (computed on zero-row inputs if no chunk ever
        came out, so that it is typed as a sync run types it)."""
        parts = [p for p in self.parts if len(p)] or self.parts[-1:]
        if not parts:
            empties = [self.wrap(i, self.whole(i, ())) for i in range(len(self.upstreams))]
            output = await self.offload(self.producer.process, *empties)
            await self.outlet.emit(output)
            parts = [output]
        whole = concat_chunks(parts, self.node.label)
        return await self.offload(self.node.adopt, whole)

    # ------------------------------------------------------------------ strategies
    async def per_chunk(self) -> TableStream:
        async def on_chunk(index: int, chunk: TableStream) -> None:
            self.note(index, chunk)
            await self.process(self.wrap(index, chunk))

        await _read_all(self.inputs, on_chunk, _ignore)
        return await self.finish()

    async def build_probe(self) -> TableStream:
        probe, build = 0, 1
        built: list[TableStream] = []
        waiting: list[TableStream] = []
        table: list[TableStream] = []  # the build side once complete (one stream)

        async def probe_with(chunk: TableStream) -> None:
            await self.process(self.wrap(probe, chunk), self.wrap(build, table[0]))

        async def on_chunk(index: int, chunk: TableStream) -> None:
            self.note(index, chunk)
            if index == build:
                built.append(chunk)
            elif table:
                await probe_with(chunk)
            else:
                waiting.append(chunk)  # keep reading: both inputs may share an upstream

        async def on_end(index: int) -> None:
            if index != build:
                return
            table.append(self.whole(build, built))
            built.clear()
            for chunk in waiting:
                await probe_with(chunk)
            waiting.clear()

        await _read_all(self.inputs, on_chunk, on_end)
        return await self.finish()

    async def symmetric_join(self) -> TableStream:
        seen: list[list[TableStream]] = [[], []]
        # Each side's rows so far as one stream, rebuilt only after that side grew.
        so_far: list[TableStream | None] = [None, None]

        async def on_chunk(index: int, chunk: TableStream) -> None:
            self.note(index, chunk)
            if not len(chunk):
                return
            other = 1 - index
            if seen[other]:
                if so_far[other] is None:
                    so_far[other] = concat_chunks(seen[other], self.upstreams[other].label)
                rows = so_far[other]
                assert rows is not None
                pair = [self.wrap(index, chunk), self.wrap(other, rows)]
                # Declared order: the operator sees its inputs as a sync run gives them.
                await self.process(*(pair if index == 0 else pair[::-1]))
            # Kept after joining: every pair of chunks meets exactly once.
            seen[index].append(chunk)
            so_far[index] = None

        await _read_all(self.inputs, on_chunk, _ignore)
        return await self.finish()

    async def fixed_batch(self) -> TableStream:
        size = int(self.producer.batch_size)
        pending: list[TableStream] = []
        rows = [0]

        async def on_chunk(index: int, chunk: TableStream) -> None:
            self.note(index, chunk)
            pending.append(chunk)
            rows[0] += len(chunk)
            full = rows[0] // size * size
            if not full:
                return
            rest = concat_chunks(pending, chunk.label)
            pending[:] = [tail(rest, full)]
            rows[0] -= full
            await self.process(self.wrap(0, head(rest, full)))

        async def on_end(index: int) -> None:
            # The last, partial batch (kept or dropped as the operator says); an empty
            # input still gets its typed, empty output.
            if rows[0] or not self.parts:
                await self.process(self.wrap(0, self.whole(0, pending)))

        await _read_all(self.inputs, on_chunk, on_end)
        return await self.finish()

    async def barrier(self) -> TableStream:
        collected: list[list[TableStream]] = [[] for _ in self.upstreams]

        async def on_chunk(index: int, chunk: TableStream) -> None:
            self.note(index, chunk)
            collected[index].append(chunk)

        await _read_all(self.inputs, on_chunk, _ignore)
        inputs = [self.wrap(i, self.whole(i, chunks)) for i, chunks in enumerate(collected)]
        collected.clear()
        output: TableStream = await self.offload(self.node.execute, *inputs)
        for chunk in slices(output, self.chunk_rows):
            await self.outlet.emit(chunk)
        return output


async def _ignore(index: int) -> None:
    return None


def head(stream: TableStream, rows: int) -> TableStream:
    """The first ``rows`` rows of ``stream``."""
    tags, _ = stream.keys()
    table = stream.as_table(system_tags=True, source_info=True).slice(0, rows)
    return TableStream(table, tags, label=stream.label, types=_types(stream))


def tail(stream: TableStream, start: int) -> TableStream:
    """The rows of ``stream`` from ``start`` on."""
    tags, _ = stream.keys()
    table = stream.as_table(system_tags=True, source_info=True).slice(start)
    return TableStream(table, tags, label=stream.label, types=_types(stream))


async def run_operator(
    node: Any,
    strategy: StreamingStrategy,
    inputs: Sequence[Channel],
    outlet: Outlet,
    *,
    offload: Offload,
    chunk_rows: int,
) -> TableStream:
    """Run one operator node over its input channels (in declared upstream order) with
    ``strategy``, emitting to ``outlet`` (closed by the caller); returns the node's whole
    output, which the node has adopted."""
    run = _OperatorRun(node, inputs, outlet, offload, chunk_rows)
    runner = {
        StreamingStrategy.PER_CHUNK: run.per_chunk,
        StreamingStrategy.BUILD_PROBE: run.build_probe,
        StreamingStrategy.SYMMETRIC_JOIN: run.symmetric_join,
        StreamingStrategy.FIXED_BATCH: run.fixed_batch,
        StreamingStrategy.BARRIER: run.barrier,
    }[strategy]
    return await runner()
