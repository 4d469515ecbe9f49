"""What a function node's next execution would do with each input row, computing nothing.

``preview_rows(node, stream, recompute=...)`` takes the steps of ``FunctionNode.execute`` with
the same code, and stops before any call or write:

1. the provenance records serve the input rows they know (``ProvenanceRecords.find``: a record
   whose result the memo still holds, fresh, or that says the row was skipped);
2. for the other rows, the function's memo serves the calls it holds, and the rest would be
   called, each distinct argument packet once (``FunctionPod.preview``): a recompute makes
   every stored result stale, as do output files gone or edited;
3. rows naming a missing input file would fail without a call.

The answer is a ``PodResult`` as ``execute`` would give it if every call succeeded: per row
its status and why a stored result is replaced, and the output rows known now (those served).
Rows sharing a call with an earlier row are cached, as they will be if that call succeeds.

The protocols ``PreviewSourceNode``, ``PreviewFunctionNode`` and ``PreviewOperatorNode`` add
``preview`` to the node protocols of ``podline.nodes.base``: planning needs it, running does
not, so a node written for an orchestrator alone stays a node (and a plan names it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

from podline.functions import PacketFunction, PodResult, RowStatus
from podline.nodes.base import FunctionNodeProtocol, OperatorNodeProtocol, SourceNodeProtocol
from podline.streams import Stream, TableStream

if TYPE_CHECKING:
    from podline.nodes.kinds import FunctionNode

_NO_OUTPUT = list(RowStatus).index(RowStatus.FAILED)

__all__ = [
    "NodePreview",
    "PreviewFunctionNode",
    "PreviewOperatorNode",
    "PreviewProducer",
    "PreviewSourceNode",
    "preview_rows",
]


@dataclass
class NodePreview:
    """What a function node's execution would do with its input rows (see the module docs)."""

    function: PacketFunction
    #: Per input row: status (``codes``), why a stored result is replaced (``reasons``), the
    #: errors of rows that would fail without a call; ``stream``: the output rows served.
    result: PodResult
    #: Per input row: whether its output waits for a call this execution would make.
    waiting: np.ndarray
    #: The input rows that reach the memo (the records know the others), and their argument
    #: packets' hashes, row for row.
    call_rows: np.ndarray
    call_hashes: pa.Array


@runtime_checkable
class PreviewProducer(Protocol):
    """An operator that can say what it would give when some input rows' packet values are
    not known yet (``Operator.preview``); other producers are planned with ``process``."""

    def preview(
        self, *inputs: Stream, unknown: Sequence[np.ndarray | None] | None = None
    ) -> TableStream: ...


@runtime_checkable
class PreviewSourceNode(SourceNodeProtocol, Protocol):
    """A source node a plan can read: ``preview()`` gives its rows, keeping nothing."""

    def preview(self) -> TableStream: ...


@runtime_checkable
class PreviewFunctionNode(FunctionNodeProtocol, Protocol):
    """A function node a plan can ask: ``preview(input)`` says what ``execute`` would do,
    calling nothing and writing nothing."""

    def preview(self, stream: Stream, *, recompute: bool = False) -> NodePreview: ...


@runtime_checkable
class PreviewOperatorNode(OperatorNodeProtocol, Protocol):
    """An operator node a plan can ask: ``preview(*inputs, unknown=...)`` gives the rows
    ``execute`` would, neither kept nor logged; ``unknown`` marks, per input, the rows whose
    packet values wait for a call (see ``Operator.preview``)."""

    def preview(
        self, *streams: Stream, unknown: Sequence[np.ndarray | None] | None = None
    ) -> TableStream: ...


def preview_rows(node: FunctionNode, stream: Stream, *, recompute: bool = False) -> NodePreview:
    """What ``node.execute(stream, recompute=recompute)`` would do (see the module docs)."""
    from podline.nodes.kinds import _merge, _nothing_found, _take

    tags, _ = stream.keys()
    batch = TableStream(stream.as_table(system_tags=True, source_info=True), tags, label=node.label)
    records = node.records
    found = _nothing_found(len(batch))
    if records is not None and not recompute and len(batch):
        found = records.find(node.entry_ids(batch))
    misses = np.flatnonzero(~found.found)
    part, part_waiting = node.pod.preview(
        _take(batch, misses), result_store=node.result_store, recompute=recompute
    )
    waiting = np.zeros(len(batch), dtype=bool)
    waiting[misses] = part_waiting
    # Merged as rows without output (their outputs wait for calls), then given their codes.
    served = replace(part, codes=np.where(part_waiting, _NO_OUTPUT, part.codes).astype(np.int8))
    result = _merge(batch, found, misses, served)
    result.codes[misses] = part.codes
    return NodePreview(
        node.pod.packet_function,
        result,
        waiting,
        misses,
        part.argument_hashes,
    )
