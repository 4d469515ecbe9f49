"""``AsyncPipelineOrchestrator``: runs every node at once, over bounded channels of chunks.

Each node is one task of an ``asyncio.TaskGroup``; each edge of the graph is a ``Channel``
(``podline.pipeline.streaming``) holding at most ``buffer_size`` chunks, a chunk being a
``TableStream`` of up to ``chunk_rows`` rows. A source executes and sends its rows in chunks;
a function node runs ``begin()``, ``execute_batch`` per piece of its input in input order
(pieces grow from a few hundred rows to ``chunk_rows`` while they stay quick, see
``_PieceSize``) and ``finish()``; an operator node streams or waits for all its inputs, as its
operator allows (see ``streaming``). Blocking work (reading a source, a piece's calls, an
operator's kernels, store writes) runs on a thread pool of the run, so nodes overlap while the
event loop only moves chunks.

The contract is the sync orchestrator's: the same hooks (``on_run_end`` always, in
``finally``), the same counts and outputs, ``error_policy`` (``"continue"`` skips and reports a
failing packet; ``"fail_fast"`` raises it and cancels every other node), no
``node_outputs`` unless ``materialize_results``, a ``TypeError`` for an unknown node type and a
``ValueError`` for a function node without exactly one upstream. Nodes hold their outputs
afterwards, operator nodes included, except function nodes whose store serves their results
when ``materialize_results`` is off (they collect nothing; a source reads its file chunk by
chunk, off the event loop).

Concurrency inside a piece comes from the executor: the node's own, else the run's, else the
pod's own, else a ``ThreadExecutor`` of the node's ``max_concurrency`` (else the
orchestrator's). With no limit set anywhere, ``async def`` functions get
``DEFAULT_ASYNC_CONCURRENCY`` calls in flight and plain functions run one call at a time
(threads cost ~30 µs a call and the GIL gives CPU-bound code nothing back). Observer hooks
come from several threads, so each node's observer is wrapped to take one lock shared by the
run: hooks never run concurrently.

Cancelling the run (cancelling ``run_async``'s task, Ctrl-C during ``run``, or a fail_fast
failure) cancels every node. Calls stop as the next call finishes (the run's ``stop`` flag): what
finished is committed before the cancellation propagates (see
``podline.functions.durability``), calls not started are dropped, and a node waits up to
``CANCEL_GRACE_SECONDS`` for the calls in flight, so nothing reports after ``on_run_end``.
"""

from __future__ import annotations

import contextvars
import functools
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from podline.errors import ConfigurationError, RunCancelledError
from podline.executors import Executor, LocalExecutor, ThreadExecutor
from podline.functions.durability import COMMIT_SECONDS
from podline.nodes import (
    NODE_BATCH,
    ErrorPolicy,
    FunctionNodeProtocol,
    NodeOutput,
    is_function_node,
    is_source_node,
)
from podline.nodes.observers import NoOpObserver, ObserverProtocol, with_batch_hooks
from podline.pipeline.graph import PipelineGraph
from podline.pipeline.orchestration import (
    NodeCounts,
    OrchestratorResult,
    RunOptions,
    check_commit_seconds,
    check_error_policy,
    check_node,
    node_counts,
)
from podline.pipeline.streaming import (
    Channel,
    Outlet,
    StreamingStrategy,
    concat_chunks,
    head,
    plan_operators,
    run_operator,
    tail,
)
from podline.runtime import run_coroutine
from podline.streams import TableStream

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "CANCEL_GRACE_SECONDS",
    "DEFAULT_ASYNC_CONCURRENCY",
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_CHUNK_ROWS",
    "AsyncPipelineOrchestrator",
    "RunCancelledError",
]

T = TypeVar("T")
_DEFAULTS = RunOptions()

#: Most rows per chunk (a function node's pieces start smaller and grow to this; see
#: ``_PieceSize``): per-chunk costs (store lookups and writes, a thread hop) then vanish next
#: to the rows' own. The sync orchestrator's function-node batches are as large.
DEFAULT_CHUNK_ROWS = NODE_BATCH
#: Chunks an edge holds before its sender waits: enough for a node to find its next piece
#: waiting, few enough that a fast source does not fill its edge with the rows a slower node
#: has not reached. At 64, a cached re-run of 10M rows peaked 130-140 MB higher than at 8
#: (a source running ahead by a million rows, with their source info), at no gain in speed.
DEFAULT_BUFFER_SIZE = 8
#: Calls of an ``async def`` function in flight per node when no limit is set.
DEFAULT_ASYNC_CONCURRENCY = 32
#: How long a cancelled node waits for its calls in flight before leaving them behind.
CANCEL_GRACE_SECONDS = 5.0
#: The smallest piece of input a function node executes at once, and the time a piece
#: should take (see ``_PieceSize``).
_FIRST_PIECE_ROWS = 256
_PIECE_SECONDS = 0.25
#: How often a run's event loop wakes up at least (see ``_tick``).
_TICK_SECONDS = 0.05


class AsyncPipelineOrchestrator:
    """Runs every node at once over bounded channels (see the module docs).

    ``buffer_size``: chunks an edge holds before its sender waits. ``max_concurrency``: calls
    in flight per function node when neither the node, the run nor the pod brings an
    executor (a node's own ``max_concurrency`` wins). ``chunk_rows``: most rows per chunk.
    """

    def __init__(
        self,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        max_concurrency: int | None = None,
        error_policy: ErrorPolicy = "continue",
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        commit_seconds: float = COMMIT_SECONDS,
    ) -> None:
        check_error_policy(error_policy)
        check_commit_seconds(commit_seconds)
        for name, value in (("buffer_size", buffer_size), ("chunk_rows", chunk_rows)):
            if not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{name} must be an integer >= 1, got {value!r}")
        _check_limit("max_concurrency", max_concurrency)
        self.buffer_size = buffer_size
        self.max_concurrency = max_concurrency
        self.error_policy: ErrorPolicy = error_policy
        self.chunk_rows = chunk_rows
        self.commit_seconds = commit_seconds

    def __repr__(self) -> str:
        return (
            f"AsyncPipelineOrchestrator(buffer_size={self.buffer_size}, "
            f"max_concurrency={self.max_concurrency}, error_policy={self.error_policy!r}, "
            f"chunk_rows={self.chunk_rows}, commit_seconds={self.commit_seconds})"
        )

    def run(
        self,
        graph: PipelineGraph,
        *,
        observer: ObserverProtocol | None = None,
        materialize_results: bool = True,
        run_id: str | None = None,
        pipeline_uri: str = "",
        executor: Executor | None = None,
        options: RunOptions = _DEFAULTS,
    ) -> OrchestratorResult:
        """Run ``graph`` to completion from synchronous code, inside a running event loop
        (Jupyter) too; see ``run_async``."""
        coroutine = self.run_async(
            graph,
            observer=observer,
            materialize_results=materialize_results,
            run_id=run_id,
            pipeline_uri=pipeline_uri,
            executor=executor,
            options=options,
        )
        # Ctrl-C cancels the run (which fires on_run_end), then is raised.
        return run_coroutine(coroutine)

    async def run_async(
        self,
        graph: PipelineGraph,
        *,
        observer: ObserverProtocol | None = None,
        materialize_results: bool = True,
        run_id: str | None = None,
        pipeline_uri: str = "",
        executor: Executor | None = None,
        options: RunOptions = _DEFAULTS,
    ) -> OrchestratorResult:
        """Run ``graph`` on the running event loop and return its ``OrchestratorResult``
        (see ``Orchestrator``)."""
        options = RunOptions(
            error_policy=options.error_policy or self.error_policy,
            commit_seconds=options.commit_seconds or self.commit_seconds,
            timeout=options.timeout,
            recompute=options.recompute,
        )
        observer = observer if observer is not None else NoOpObserver()
        run_id = run_id or str(uuid.uuid4())
        started = time.perf_counter()
        result = OrchestratorResult(run_id, pipeline_uri, {})
        run = _Run(self, graph, observer, executor, options, materialize=materialize_results)
        run.hook(observer.on_run_start, run_id=run_id, pipeline_uri=pipeline_uri)
        try:
            _check_nodes(graph)
            await run.execute()
            for node in graph:
                result.counts[node.label] = run.counts[id(node)]
                if materialize_results:
                    result.node_outputs[node.label] = run.outputs[id(node)]
        finally:
            run.close()
            result.seconds = time.perf_counter() - started
            run.hook(observer.on_run_end, run_id=run_id)
            run.ended = True
        return result


def _check_limit(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigurationError(f"{name} must be None or an integer >= 1, got {value!r}")


def _check_nodes(graph: PipelineGraph) -> None:
    """Reject what the sync orchestrator rejects, before any node starts."""
    for node in graph:
        check_node(node)


class _Run:
    """One run: its channels, thread pool, hook lock, cancellation flag and outputs."""

    def __init__(
        self,
        orchestrator: AsyncPipelineOrchestrator,
        graph: PipelineGraph,
        observer: ObserverProtocol,
        executor: Executor | None,
        options: RunOptions,
        *,
        materialize: bool = True,
    ) -> None:
        self.settings = orchestrator
        self.materialize = materialize
        self.graph = graph
        self.observer = observer
        self.executor = executor
        self.options = options
        # One lock for every hook of the run: they come from several threads.
        self.lock = threading.RLock()
        self.ended = False
        #: Set when the run is cancelled: executors stop at their next window of calls.
        self.stop = threading.Event()
        # Each node has at most one blocking step in flight, so one thread per node lets
        # them all overlap (the loop's default pool has only cpu_count + 4 threads).
        self.pool = ThreadPoolExecutor(
            max_workers=min(64, len(graph) + 2), thread_name_prefix="podline-node"
        )
        #: Each node's output (kept only when results are materialized: consumers read
        #: it chunk by chunk from the channels) and counts.
        self.outputs: dict[int, TableStream] = {}
        self.counts: dict[int, NodeCounts] = {}

    def close(self) -> None:
        # Threads left behind by a cancellation past the grace period finish on their own.
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ plumbing
    def hook(self, hook: Callable[..., Any], **kwargs: Any) -> None:
        with self.lock:
            if not self.ended:
                hook(**kwargs)

    def scoped(self, node: Any) -> _SerializedObserver:
        """The node's observer, its hooks serialized with every other hook of the run."""
        with self.lock:
            inner = with_batch_hooks(self.observer.contextualize(*node.identity_path))
        return _SerializedObserver(inner, self)

    async def offload(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the run's thread pool, awaited."""
        import asyncio

        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        future = loop.run_in_executor(self.pool, call)
        try:
            # Shielded: a cancelled node must not lose track of its thread (see below).
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            self.stop.set()
            await _settle(future)
            raise

    # ------------------------------------------------------------------ nodes
    async def execute(self) -> None:
        import asyncio

        plans = plan_operators(self.graph)
        inputs: dict[int, list[Channel]] = {id(n): [] for n in self.graph}
        edges: dict[int, list[Channel]] = {id(n): [] for n in self.graph}
        for node in self.graph:
            # One channel per edge, in declared upstream order: a node reading the same
            # upstream twice gets two channels, both fed by the broadcast.
            for upstream in node.upstreams:
                channel = Channel(self.settings.buffer_size)
                inputs[id(node)].append(channel)
                edges[id(upstream)].append(channel)
        failure: BaseException | None = None
        ticker = asyncio.create_task(_tick())
        try:
            async with asyncio.TaskGroup() as tasks:
                for node in self.graph:
                    task = self.node_task(
                        node, plans.get(id(node)), inputs[id(node)], Outlet(edges[id(node)])
                    )
                    tasks.create_task(task, name=f"podline node {node.label}")
        except BaseExceptionGroup as group:
            failure = _primary(group)
        finally:
            ticker.cancel()
        if failure is not None:
            # Raised outside the handler: the error reads as itself, not as "during
            # handling of an exception group".
            raise failure

    async def node_task(
        self, node: Any, strategy: StreamingStrategy | None, inputs: list[Channel], outlet: Outlet
    ) -> None:
        scoped = self.scoped(node)
        node_hash = str(node.content_hash())
        tags, _ = node.output_schema(system_tags=True)
        scoped.on_node_start(node_label=node.label, node_hash=node_hash, tag_schema=tags)
        if is_source_node(node):
            output = await self.offload(node.execute)
            # A source read in chunks is read chunk by chunk, off the event loop.
            chunks = output.iter_chunks(self.settings.chunk_rows)
            while (chunk := await self.offload(next, chunks, None)) is not None:
                await outlet.emit(chunk)
        elif is_function_node(node):
            output = await self.function_node(node, inputs[0], outlet, scoped)
        else:
            assert strategy is not None
            output = await run_operator(
                node,
                strategy,
                inputs,
                outlet,
                offload=self.offload,
                chunk_rows=self.settings.chunk_rows,
            )
        await outlet.close()
        self.counts[id(node)] = node_counts(node, output)
        if self.materialize:
            self.outputs[id(node)] = output
        elif is_function_node(node):
            node.release_output()
        scoped.on_node_end(node_label=node.label, node_hash=node_hash)

    async def function_node(
        self,
        node: FunctionNodeProtocol,
        channel: Channel,
        outlet: Outlet,
        scoped: _SerializedObserver,
    ) -> TableStream:
        upstream = node.upstreams[0]
        executor = self.executor_for(node)
        reader = _Pieces(channel, upstream.label)
        # The node's own executor wins inside execute_batch: pieces are sized for it then.
        sizes = _PieceSize(node.executor or executor, self.settings)
        node.begin(
            commit_seconds=self.options.commit_seconds or COMMIT_SECONDS,
            timeout=self.options.timeout,
            recompute=node.label in self.options.recompute,
            stop=self.stop,
            keep_output=self.materialize,
        )
        while (piece := await reader.next(sizes.rows)) is not None:
            began = time.perf_counter()
            output = await self.offload(
                node.execute_batch,
                NodeOutput(upstream, piece),
                observer=scoped,
                error_policy=self.options.error_policy,
                executor=executor,
            )
            sizes.observe(len(piece), time.perf_counter() - began)
            await outlet.emit(output)
        whole: TableStream = await self.offload(node.finish)
        return whole

    def executor_for(self, node: FunctionNodeProtocol) -> Executor:
        """The run's executor, else the pod's own (as in a sync run), else a default of the
        node's or the orchestrator's limit. (A node's own executor wins over all of these
        inside ``execute_batch``.)"""
        if self.executor is not None:
            return self.executor
        if node.pod_executor is not None:
            return node.pod_executor
        _check_limit(f"max_concurrency of node {node.label!r}", node.max_concurrency)
        limit = node.max_concurrency or self.settings.max_concurrency
        if limit is not None:
            return ThreadExecutor(limit)
        if node.is_async:
            return ThreadExecutor(DEFAULT_ASYNC_CONCURRENCY)
        return LocalExecutor()


class _Pieces:
    """A function node's input, handed out in pieces of a requested size: what is already
    waiting is taken without waiting for more, so a slow trickle is never held back."""

    def __init__(self, channel: Channel, label: str) -> None:
        self.channel = channel
        self.label = label
        self.held: list[TableStream] = []
        self.rows = 0

    async def next(self, size: int) -> TableStream | None:
        """Up to ``size`` rows (waiting only when none is held); None at the end."""
        if self.rows < size:
            if not self.held:
                chunks = await self.channel.receive_up_to(size)
                if chunks is None:
                    return None
            else:
                chunks = self.channel.ready_up_to(size - self.rows)
            self.held += chunks
            self.rows += sum(len(c) for c in chunks)
        whole = concat_chunks(self.held, self.label)
        if len(whole) <= size:
            self.held, self.rows = [], 0
            return whole
        rest = tail(whole, size)
        self.held, self.rows = [rest], len(rest)
        return head(whole, size)


class _PieceSize:
    """How many rows a function node hands to one ``execute_batch``.

    Each call has a fixed cost (two store lookups, a records write), and downstream nodes
    see nothing of a piece until it is done. So pieces start small (but 16 times the calls
    in flight: all of a piece's calls end before the next piece starts, and the wait for
    its last calls costs less in a longer piece) and grow four-fold while they take under
    ``_PIECE_SECONDS``, up to ``chunk_rows``; they shrink when one takes much longer. Fast
    functions soon run in large pieces; slow ones keep streaming.
    """

    def __init__(self, executor: Executor, settings: AsyncPipelineOrchestrator) -> None:
        workers = max(1, executor.max_workers)
        self.least = min(settings.chunk_rows, max(_FIRST_PIECE_ROWS, 16 * workers))
        self.most = settings.chunk_rows
        self.rows = self.least

    def observe(self, rows: int, seconds: float) -> None:
        if rows >= self.rows and seconds < _PIECE_SECONDS:
            self.rows = min(self.most, self.rows * 4)
        elif seconds > 4 * _PIECE_SECONDS:
            self.rows = max(self.least, self.rows // 2)


async def _settle(future: asyncio.Future[Any]) -> None:
    """Wait (up to the grace period) for a cancelled node's thread to return; its outcome
    (typically ``RunCancelledError``) is of no interest any more."""
    import asyncio

    future.add_done_callback(_discard)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CANCEL_GRACE_SECONDS
    while not future.done() and (left := deadline - loop.time()) > 0:
        try:
            await asyncio.wait([future], timeout=left)
        except asyncio.CancelledError:
            continue  # cancelled again while waiting: still bounded by the deadline


def _discard(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: asyncio would otherwise log it as lost


async def _tick() -> None:
    """Wake the loop now and then. Python runs signal handlers (asyncio.run's Ctrl-C
    handler among them) only when the main thread runs; a loop waiting for threads to
    finish a long step would otherwise notice Ctrl-C only when the step is over."""
    import asyncio

    while True:
        await asyncio.sleep(_TICK_SECONDS)


def _primary(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to raise for a failed run: the first node's; the others become a note."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    first, others = leaves[0], leaves[1:]
    if others:
        described = sorted(f"{type(e).__name__}: {e}" for e in others)
        first.add_note(f"other failures in the same run: {'; '.join(described)}")
    return first


class _SerializedObserver:
    """A node's observer whose every hook holds the run's lock (and is dropped once the
    run has ended, should a thread left behind by a cancellation still report)."""

    def __init__(self, inner: Any, run: _Run) -> None:
        self._inner = inner
        self._run = run

    @property
    def observes_packets(self) -> bool:
        return bool(getattr(self._inner, "observes_packets", True))

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value):
            return value

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._run.lock:
                return None if self._run.ended else value(*args, **kwargs)

        return locked
