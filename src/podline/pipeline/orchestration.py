"""What every orchestrator honours: the ``Orchestrator`` protocol, the per-run options, and
the result a run returns.

An orchestrator runs a compiled ``PipelineGraph``: podline ships ``SyncPipelineOrchestrator``
(nodes one after another over buffers) and ``AsyncPipelineOrchestrator`` (every node at once
over bounded channels), and any object with the same ``run`` is one too (see
docs/pipelines.md, "Writing an orchestrator"). ``Pipeline.run`` builds ``RunOptions`` from its
keyword arguments and never changes the orchestrator it is given.

The contract: the observer's hooks (``on_run_start`` first, ``on_run_end`` always, in
``finally``; ``on_node_start``/``on_node_end`` around each node, the packet hooks from the
function nodes); ``error_policy`` (``"continue"`` skips and reports a failing packet,
``"fail_fast"`` raises it); no ``node_outputs`` unless ``materialize_results``; a
``GraphError`` for a function node without exactly one upstream and an
``UnknownNodeTypeError`` for a node of no known kind (``check_node``).
"""

from __future__ import annotations

import html
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, get_args, runtime_checkable

from podline.errors import (
    ConfigurationError,
    GraphError,
    InputValidationError,
    UnknownNodeTypeError,
)
from podline.executors import Executor
from podline.functions import RowStatus
from podline.nodes import (
    ErrorPolicy,
    is_function_node,
    is_operator_node,
    is_source_node,
)
from podline.nodes.observers import ObserverProtocol
from podline.pipeline.graph import PipelineGraph
from podline.streams import TableStream

__all__ = [
    "NodeCounts",
    "Orchestrator",
    "OrchestratorResult",
    "RunOptions",
    "check_commit_seconds",
    "check_error_policy",
    "check_node",
    "node_counts",
]


@dataclass(frozen=True)
class RunOptions:
    """Options of one run; ``None`` leaves the orchestrator's own setting.

    ``error_policy``: ``"continue"`` or ``"fail_fast"``. ``commit_seconds``: the durability
    window (see ``podline.functions.durability``). ``timeout``: seconds each call may take,
    for pods that set no limit of their own. ``recompute``: labels of the function nodes
    whose calls all run again, replacing their stored results.
    """

    error_policy: ErrorPolicy | None = None
    commit_seconds: float | None = None
    timeout: float | None = None
    recompute: Collection[str] = frozenset()

    def __post_init__(self) -> None:
        if self.error_policy is not None:
            check_error_policy(self.error_policy)
        if self.commit_seconds is not None:
            check_commit_seconds(self.commit_seconds)
        object.__setattr__(self, "recompute", frozenset(self.recompute))


@runtime_checkable
class Orchestrator(Protocol):
    """Runs a compiled graph (see the module docs for the contract)."""

    def run(
        self,
        graph: PipelineGraph,
        *,
        observer: ObserverProtocol | None = None,
        materialize_results: bool = True,
        run_id: str | None = None,
        pipeline_uri: str = "",
        executor: Executor | None = None,
        options: RunOptions = ...,
    ) -> OrchestratorResult:
        """Run every node of ``graph``; ``executor`` runs the calls of function nodes that
        bring none of their own."""
        ...


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
    """What happened in a node's run; ``output`` is what it gave (a function node counts
    its output rows itself, as it may not have kept them)."""
    if not is_function_node(node):
        return NodeCounts(rows=len(output))
    counts = NodeCounts(rows=node.output_rows)
    statuses = node.counts
    if statuses:
        counts.computed = statuses[RowStatus.COMPUTED]
        counts.cached = statuses[RowStatus.CACHED]
        counts.skipped = statuses[RowStatus.SKIPPED]
        counts.failed = statuses[RowStatus.FAILED]
        counts.recomputed = node.recomputed
    return counts
