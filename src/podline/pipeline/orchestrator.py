"""``SyncPipelineOrchestrator``: runs a compiled graph in topological order over buffers.

The orchestrator only schedules: each node's ``execute`` does the work. Every node's output is
kept in a buffer until all of its consumers have run; with ``materialize_results=False`` the
buffers are freed as soon as possible and the result holds none of them. ``on_run_end`` fires
whatever happens; a node that raises does not get ``on_node_end``.

``error_policy`` decides what a failing function call does: ``"continue"`` skips the packet
(reported through ``on_packet_crash`` and counted as failed) and finishes the run;
``"fail_fast"`` raises at the first failure. ``commit_seconds`` is the durability window:
finished calls are committed at least that often (see ``podline.functions.durability``).
"""

from __future__ import annotations

import html
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, cast, get_args

from podline.errors import (
    ConfigurationError,
    GraphError,
    InputValidationError,
    UnknownNodeTypeError,
)
from podline.executors import Executor
from podline.functions import RowStatus
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
from podline.streams import TableStream

__all__ = [
    "NodeCounts",
    "OrchestratorResult",
    "SyncPipelineOrchestrator",
    "check_commit_seconds",
    "check_error_policy",
    "check_node",
    "node_counts",
]


@dataclass
class NodeCounts:
    """What happened to a node's input packets in one run."""

    computed: int = 0
    cached: int = 0
    skipped: int = 0
    failed: int = 0
    rows: int = 0
    #: Of the computed packets, those whose call replaced a stored result (a recompute was
    #: asked for, or an output file of the stored result was missing or changed).
    recomputed: int = 0


@dataclass
class OrchestratorResult:
    """The outcome of one run: its id, per-node counts and (optionally) node outputs.

    ``str(result)`` is a readable summary; notebooks show it as an HTML table.
    """

    run_id: str
    pipeline_uri: str
    counts: dict[str, NodeCounts]
    node_outputs: dict[str, TableStream] = field(default_factory=dict, repr=False)
    seconds: float = 0.0
    #: How to read the failed packets' logs (set by ``Pipeline.run`` when it recorded them),
    #: e.g. ``pipeline.logs(state='FAILED', run_id='...')``; named by the summary.
    failure_logs: str = ""

    _COLUMNS = ("computed", "cached", "skipped", "failed", "rows")

    def _rows(self) -> list[tuple[str, ...]]:
        return [
            (label, *(str(getattr(c, name)) for name in self._COLUMNS))
            for label, c in self.counts.items()
        ]

    def __str__(self) -> str:
        header = ("node", *self._COLUMNS)
        rows = self._rows()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def line(cells: tuple[str, ...]) -> str:
            first = cells[0].ljust(widths[0])
            rest = "  ".join(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
            return f"  {first}  {rest}"

        lines = [
            f"run {self.run_id} of {self.pipeline_uri or '(unnamed)'}: {self.seconds:.2f} s",
            line(header),
            *(line(r) for r in rows),
        ]
        lines.extend(
            f"  {note}" for note in (self._recomputed_line(), self._failure_line()) if note
        )
        return "\n".join(lines)

    def _recomputed_line(self) -> str:
        recomputed = sum(c.recomputed for c in self.counts.values())
        if not recomputed:
            return ""
        where = sorted(label for label, c in self.counts.items() if c.recomputed)
        return (
            f"{recomputed} packet(s) recomputed (in {', '.join(where)}), replacing stored "
            "results: a recompute was asked for, or their output files were missing or "
            "changed (see status(), column 'reason')"
        )

    def _failure_line(self) -> str:
        failed = sum(c.failed for c in self.counts.values())
        if not failed:
            return ""
        where = sorted(label for label, c in self.counts.items() if c.failed)
        text = f"{failed} packet(s) failed (in {', '.join(where)})"
        if self.failure_logs:
            return f"{text}; their errors and output: {self.failure_logs}"
        return f"{text}; they were reported to the run's observer (on_packet_crash)"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in ("node", *self._COLUMNS))
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
            for row in self._rows()
        )
        title = html.escape(f"run {self.run_id} of {self.pipeline_uri}: {self.seconds:.2f} s")
        notes = (self._recomputed_line(), self._failure_line())
        note = "".join(f"<p>{html.escape(text)}</p>" for text in notes if text)
        return f"<div><p><b>{title}</b></p><table><tr>{head}</tr>{body}</table>{note}</div>"


class SyncPipelineOrchestrator:
    """Runs nodes one after another in topological order."""

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
        timeout: float | None = None,
        recompute: Collection[str] = (),
    ) -> OrchestratorResult:
        """Run every node of ``graph`` in order (``timeout``: seconds each call may take,
        for pods that set no limit; ``recompute``: labels of the function nodes whose calls
        all run again, replacing their stored results)."""
        observer = observer if observer is not None else NoOpObserver()
        run_id = run_id or str(uuid.uuid4())
        started = time.perf_counter()
        buffers: dict[int, TableStream] = {}
        pending = {id(n): len(graph.successors(n)) for n in graph}
        result = OrchestratorResult(run_id, pipeline_uri, {})
        observer.on_run_start(run_id=run_id, pipeline_uri=pipeline_uri)
        try:
            for node in graph:
                output = self._run_node(
                    node,
                    buffers,
                    observer,
                    executor,
                    timeout=timeout,
                    recompute=node.label in recompute,
                )
                buffers[id(node)] = output
                result.counts[node.label] = node_counts(node, output)
                if materialize_results:
                    result.node_outputs[node.label] = output
                else:
                    for upstream in node.upstreams:
                        pending[id(upstream)] -= 1
                        if pending[id(upstream)] == 0:
                            buffers.pop(id(upstream), None)
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
        *,
        timeout: float | None,
        recompute: bool,
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
                error_policy=self.error_policy,
                executor=executor,
                commit_seconds=self.commit_seconds,
                timeout=timeout,
                recompute=recompute,
            )
        else:
            assert is_operator_node(node)  # (check_node rejected every other kind)
            output = node.execute(*inputs)
        scoped.on_node_end(node_label=node.label, node_hash=node_hash)
        return output


def check_error_policy(error_policy: str) -> ErrorPolicy:
    """``error_policy`` if it is one orchestrators know, else a ``ConfigurationError``."""
    if error_policy in get_args(ErrorPolicy):
        return cast(ErrorPolicy, error_policy)
    raise ConfigurationError(
        f"error_policy must be 'continue' or 'fail_fast', got {error_policy!r}"
    )


def check_commit_seconds(seconds: float) -> float:
    """``seconds`` if it is a usable durability window, else an ``InputValidationError``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise InputValidationError(f"commit_seconds must be positive seconds, got {seconds!r}")
    return float(seconds)


def check_node(node: Any) -> None:
    """Reject a node no orchestrator can run: an unknown kind (``UnknownNodeTypeError``, a
    ``TypeError``), or a function node without exactly one upstream (``GraphError``, a
    ``ValueError``)."""
    if is_function_node(node):
        if len(node.upstreams) != 1:
            raise GraphError(
                f"function node {node.label!r} needs exactly 1 upstream, has {len(node.upstreams)}"
            )
    elif not (is_source_node(node) or is_operator_node(node)):
        raise UnknownNodeTypeError(f"Unknown node type: {getattr(node, 'node_type', None)!r}")


def node_counts(node: Any, output: TableStream) -> NodeCounts:
    counts = NodeCounts(rows=len(output))
    statuses = getattr(node, "counts", None) if is_function_node(node) else None
    if statuses:
        counts.computed = statuses[RowStatus.COMPUTED]
        counts.cached = statuses[RowStatus.CACHED]
        counts.skipped = statuses[RowStatus.SKIPPED]
        counts.failed = statuses[RowStatus.FAILED]
        counts.recomputed = node.recomputed
    return counts
