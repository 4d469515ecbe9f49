"""``SyncPipelineOrchestrator``: runs a compiled graph in topological order over buffers.

The orchestrator only schedules: each node's ``execute`` does the work. Every node's output is
kept in a buffer until all of its consumers have run; with ``materialize_results=False`` the
buffers are freed as soon as possible and the result holds none of them. ``on_run_end`` fires
whatever happens; a node that raises does not get ``on_node_end``. The contract every
orchestrator honours is in ``podline.pipeline.orchestration``.
"""

from __future__ import annotations

import time
import uuid

from podline.executors import Executor
from podline.functions.durability import COMMIT_SECONDS
from podline.nodes import (
    ErrorPolicy,
    Node,
    NodeOutput,
    is_function_node,
    is_operator_node,
    is_source_node,
)
from podline.nodes.observers import NoOpObserver, ObserverProtocol, with_batch_hooks
from podline.pipeline.graph import PipelineGraph
from podline.pipeline.orchestration import (
    OrchestratorResult,
    RunOptions,
    check_commit_seconds,
    check_error_policy,
    check_node,
    node_counts,
)
from podline.streams import TableStream

__all__ = ["SyncPipelineOrchestrator"]

_DEFAULTS = RunOptions()


class SyncPipelineOrchestrator:
    """Runs nodes one after another in topological order.

    ``error_policy`` and ``commit_seconds`` are the defaults of its runs (a run's
    ``RunOptions`` may set others)."""

    def __init__(
        self, error_policy: ErrorPolicy = "continue", *, commit_seconds: float = COMMIT_SECONDS
    ) -> None:
        self.error_policy: ErrorPolicy = check_error_policy(error_policy)
        self.commit_seconds = check_commit_seconds(commit_seconds)

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
        """Run every node of ``graph`` in order (see ``Orchestrator``)."""
        options = RunOptions(
            error_policy=options.error_policy or self.error_policy,
            commit_seconds=options.commit_seconds or self.commit_seconds,
            timeout=options.timeout,
            recompute=options.recompute,
        )
        observer = observer if observer is not None else NoOpObserver()
        run_id = run_id or str(uuid.uuid4())
        started = time.perf_counter()
        buffers: dict[int, TableStream] = {}
        pending = {id(n): len(graph.successors(n)) for n in graph}
        result = OrchestratorResult(run_id, pipeline_uri, {})
        observer.on_run_start(run_id=run_id, pipeline_uri=pipeline_uri)
        try:
            for node in graph:
                # Only what a consumer or the caller reads is kept (a large output is held
                # on disk, see SpillBuffer); the rest is counted and let go.
                keep = materialize_results or pending[id(node)] > 0
                output = self._run_node(node, buffers, observer, executor, options, keep=keep)
                result.counts[node.label] = node_counts(node, output)
                if materialize_results:
                    result.node_outputs[node.label] = output
                    buffers[id(node)] = output
                    continue
                if keep:
                    buffers[id(node)] = output
                elif is_function_node(node):
                    node.release_output()
                for upstream in node.upstreams:
                    pending[id(upstream)] -= 1
                    if pending[id(upstream)] == 0:
                        buffers.pop(id(upstream), None)
                        if is_function_node(upstream):
                            upstream.release_output()
        finally:
            result.seconds = time.perf_counter() - started
            observer.on_run_end(run_id=run_id)
        return result

    def _run_node(
        self,
        node: Node,
        buffers: dict[int, TableStream],
        observer: ObserverProtocol,
        executor: Executor | None,
        options: RunOptions,
        *,
        keep: bool,
    ) -> TableStream:
        node_hash = str(node.content_hash())
        tags, _ = node.output_schema(system_tags=True)
        scoped = with_batch_hooks(observer.contextualize(*node.identity_path))
        # Declared upstream order; each buffer keeps its node's identity (see NodeOutput).
        inputs = [NodeOutput(u, buffers[id(u)]) for u in node.upstreams]
        # ``total``: how many packets will end or crash (function nodes only).
        total = {"total": len(inputs[0])} if is_function_node(node) and len(inputs) == 1 else {}
        scoped.on_node_start(node_label=node.label, node_hash=node_hash, tag_schema=tags, **total)
        check_node(node)
        if is_source_node(node):
            output = node.execute()
        elif is_function_node(node):
            output = node.execute(
                inputs[0],
                observer=scoped,
                error_policy=options.error_policy,
                executor=executor,
                commit_seconds=options.commit_seconds,
                timeout=options.timeout,
                recompute=node.label in options.recompute,
                keep_output=keep,
            )
        else:
            assert is_operator_node(node)  # (check_node rejected every other kind)
            output = node.execute(*inputs)
        scoped.on_node_end(node_label=node.label, node_hash=node_hash)
        return output
