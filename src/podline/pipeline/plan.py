"""``pipeline.plan()``: what the next ``run()`` would do, per node and per row, and why,
computed without calling any function and without writing to any store.

The graph is walked in topological order, as a run walks it, and every node says what its
execution would do with the rows it would receive (``preview`` of the node protocols):

* a source node reads its rows;
* a function node takes the steps of its execution up to the first call (records, memo,
  output files, input files: ``podline.nodes.preview``); the rows it would compute get their
  reason from what the store remembers (``podline.pipeline.plan_history``);
* an operator node runs its operator on the rows planned for its inputs (operators compute
  nothing a function would).

**Pending rows.** The output of a row that would be computed is not known before the run:
its tags and system tags are (a function passes them through), its packet values are not.
Such rows travel downstream with null values and a source-info token naming the node they
wait for, so operators place them (joins match them by tags) and the nodes downstream count
them as ``pending``: the run computes them unless the new upstream result equals a stored
one (then their input rows are the stored ones and they are served). Pending counts are what
the run meets if every call upstream gives a row; a call that fails or returns ``SKIP`` gives
none, and a ``Filter`` keeps every pending row that its terms on tags alone keep, since
only their values could decide the rest (``Operator.preview``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import is_source_info
from podline.errors import PipelineError
from podline.functions import RowStatus
from podline.nodes import NodeOutput, is_function_node, is_operator_node, is_source_node
from podline.nodes.preview import PreviewFunctionNode, PreviewOperatorNode, PreviewSourceNode
from podline.pipeline.graph import PipelineGraph
from podline.pipeline.layout import PipelineLayout
from podline.pipeline.orchestration import check_node
from podline.pipeline.plan_history import NodeHistory
from podline.pipeline.plan_report import KNOWN, PENDING, NodePlan, Plan, RowPlans
from podline.streams import Stream, TableStream

__all__ = ["make_plan"]

#: Source info of a value that a call of the run has yet to make: ``pending::<node label>``.
#: Only plans hold it; it is never stored.
_PENDING_TOKEN = "pending::"
_COMPUTED, _CACHED, _SKIPPED, _FAILED = (list(RowStatus).index(s) for s in RowStatus)
_REPLACED = {
    "recompute requested": "forced recompute",
    "output file missing": "output file missing",
    "output file changed": "output file changed",
}


def make_plan(
    graph: PipelineGraph,
    scope: PipelineLayout,
    *,
    uri: str,
    recompute: Collection[str] = (),
    upto: str | None = None,
) -> Plan:
    """The plan of a run of ``graph`` (``recompute``: labels of the function nodes whose
    calls all run again; ``upto``: plan only this node and what it depends on)."""
    wanted = _ancestors(graph, upto) if upto is not None else None
    nodes = [n for n in graph if wanted is None or id(n) in wanted]
    readers = {id(n): sum(1 for m in nodes for u in m.upstreams if u is n) for n in nodes}
    planned: dict[int, TableStream] = {}
    plans: list[NodePlan] = []
    for node in nodes:
        inputs = [NodeOutput(u, planned[id(u)]) for u in node.upstreams]
        output, plan = _plan_node(node, inputs, scope, node.label in recompute)
        plans.append(plan)
        planned[id(node)] = output
        for upstream in node.upstreams:
            readers[id(upstream)] -= 1
            if not readers[id(upstream)]:
                del planned[id(upstream)]
    return Plan(uri, plans)


def _plan_node(
    node: Any, inputs: list[NodeOutput], scope: PipelineLayout, recompute: bool
) -> tuple[TableStream, NodePlan]:
    """What the run would do with one node, given the outputs planned for its inputs."""
    check_node(node)
    if is_source_node(node):
        if not isinstance(node, PreviewSourceNode):
            raise _cannot_plan(node.label, "PreviewSourceNode")
        output = node.preview()
        return output, _rows_plan(node.label, "source", output)
    if is_function_node(node):
        if not isinstance(node, PreviewFunctionNode):
            raise _cannot_plan(node.label, "PreviewFunctionNode")
        return _FunctionPlan(node, inputs[0], scope, recompute).plan()
    assert is_operator_node(node)  # (check_node rejected every other kind)
    if not isinstance(node, PreviewOperatorNode):
        raise _cannot_plan(node.label, "PreviewOperatorNode")
    unknown = [_waiting(s.as_table(source_info=True))[0] >= 0 for s in inputs]
    output = node.preview(*inputs, unknown=unknown)
    return output, _rows_plan(node.label, "operator", output)


def _cannot_plan(label: str, protocol: str) -> PipelineError:
    return PipelineError(
        f"node {label!r} cannot be planned: it has no preview() ({protocol} in "
        "podline.nodes.preview)"
    )


def _ancestors(graph: PipelineGraph, label: str) -> set[int]:
    found: set[int] = set()
    todo = [graph.by_label[label]]
    while todo:
        node = todo.pop()
        if id(node) not in found:
            found.add(id(node))
            todo.extend(node.upstreams)
    return found


def _rows_plan(label: str, kind: str, output: TableStream) -> NodePlan:
    """The plan of a source or operator node: each output row known or pending."""
    waits, labels = _waiting(output.as_table(source_info=True))
    status = np.where(waits >= 0, PENDING, KNOWN).astype(np.int8)
    reasons = [("", ""), *(("pending upstream", _waits_for(text)) for text in labels)]
    tags, _ = output.keys()
    rows = RowPlans(output.as_table().select(list(tags)), status, waits + 1, reasons)
    return NodePlan(label, kind, rows, len(output))


def _waits_for(labels: str) -> str:
    return f"waits for {labels}: computed unless the new result equals a stored one"


class _FunctionPlan:
    """What a run would do with a function node's input rows, and its planned output."""

    def __init__(
        self, node: PreviewFunctionNode, stream: Stream, scope: PipelineLayout, recompute: bool
    ) -> None:
        self.node = node
        self.scope = scope
        self.table = stream.as_table(system_tags=True, source_info=True)
        self.tag_names, _ = stream.keys()
        tag_types, packet_types = stream.output_schema()
        self.waits, self.labels = _waiting(self.table)
        self.known_rows = np.flatnonzero(self.waits < 0)
        all_known = len(self.known_rows) == self.table.num_rows
        self.known = TableStream(
            self.table if all_known else self.table.take(pa.array(self.known_rows, pa.int64())),
            self.tag_names,
            label=node.label,
            types={**tag_types, **packet_types},
        )
        self.preview = node.preview(self.known, recompute=recompute)
        self.reasons = _Reasons()

    def plan(self) -> tuple[TableStream, NodePlan]:
        status = np.full(self.table.num_rows, PENDING, dtype=np.int8)
        status[self.known_rows] = self.preview.result.codes
        why = np.zeros(self.table.num_rows, dtype=np.int64)
        for index, text in enumerate(self.labels):
            why[self.waits == index] = self.reasons.add("pending upstream", _waits_for(text))
        why[self.known_rows] = self._known_reasons()
        output = self._output()
        rows = RowPlans(self.table.select(list(self.tag_names)), status, why, self.reasons.pairs)
        return output, NodePlan(self.node.label, "function", rows, len(output))

    def _known_reasons(self) -> np.ndarray:
        """Per known input row: why the run would do what it does with it."""
        result, waiting, add = self.preview.result, self.preview.waiting, self.reasons.add
        codes = result.codes
        why = np.full(len(codes), add("stored result"), dtype=np.int64)
        why[(codes == _CACHED) & waiting] = add(
            "same call as another row", "its argument packet is computed for an earlier row"
        )
        why[codes == _SKIPPED] = add("stored SKIP", "the function returned SKIP for it")
        why[codes == _FAILED] = add("input file missing", "same arguments as a failing row")
        for row, error in result.errors.items():
            why[row] = add("input file missing", str(error.__cause__ or error))
        explained = np.zeros(len(codes), dtype=bool)
        for row, text in result.reasons.items():
            kind, _, detail = text.partition(": ")
            why[row] = add(_REPLACED.get(kind, kind), detail)
            explained[row] = True
        rest = np.flatnonzero((codes == _COMPUTED) & ~explained)
        if len(rest):
            why[rest] = self._history_reasons(rest)
        return why

    def _history_reasons(self, rows: np.ndarray) -> np.ndarray:
        """Why these known rows would be computed, from what the store remembers."""
        scope, preview, known = self.scope, self.preview, self.known
        node_hash = str(self.node.content_hash())
        history = NodeHistory(scope, self.node.label, preview.function, node_hash)
        call_of_row = np.full(len(known), -1, dtype=np.int64)
        call_of_row[preview.call_rows] = np.arange(len(preview.call_rows))
        picked = pa.array(rows, pa.int64())
        codes, pairs = history.why(
            known.as_table().select(list(self.tag_names)).take(picked),
            known.packet_hashes().take(picked),
            preview.call_hashes.take(pa.array(call_of_row[rows], pa.int64())),
        )
        numbers = np.array([self.reasons.add(*pair) for pair in pairs], dtype=np.int64)
        return numbers[codes]

    def _output(self) -> TableStream:
        """The node's output as the plan knows it, in input order: the rows served, and a
        pending row (null values) for each row whose call runs or whose input is pending."""
        served = self.preview.result.stream
        full = served.as_table(system_tags=True, source_info=True)
        codes, waiting = self.preview.result.codes, self.preview.waiting
        served_rows = self.known_rows[(codes == _CACHED) & ~waiting]
        called = waiting & (codes != _FAILED)
        pending = np.flatnonzero(self.waits >= 0)
        stub_rows = np.concatenate([self.known_rows[called], pending])
        if len(stub_rows):
            tokens = [self.node.label] * int(np.count_nonzero(called))
            tokens += [self.labels[i] for i in self.waits[pending].tolist()]
            inputs = self.table.take(pa.array(stub_rows, pa.int64()))
            stubs = _stubs(self.node, inputs, full.schema, tokens)
            order = np.argsort(np.concatenate([served_rows, stub_rows]), kind="stable")
            full = pa.concat_tables([full, stubs]).take(pa.array(order, pa.int64()))
        tags, packets = served.output_schema()
        return TableStream(full, tuple(tags), label=self.node.label, types={**tags, **packets})


class _Reasons:
    """Distinct (reason, detail) pairs, numbered as they come."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self._index: dict[tuple[str, str], int] = {}

    def add(self, reason: str, detail: str = "") -> int:
        key = (reason, detail)
        if key not in self._index:
            self._index[key] = len(self.pairs)
            self.pairs.append(key)
        return self._index[key]


def _stubs(
    node: PreviewFunctionNode, inputs: pa.Table, schema: pa.Schema, waits_for: list[str]
) -> pa.Table:
    """Pending output rows for these input rows: their tags, null values, and a source-info
    token naming what they wait for."""
    _, outputs = node.output_schema()
    tokens = pa.array([_PENDING_TOKEN + w for w in waits_for], pa.large_string())
    columns = []
    for field in schema:
        if field.name in outputs:
            columns.append(pa.nulls(inputs.num_rows, field.type))
        elif is_source_info(field.name):
            columns.append(tokens.cast(field.type))
        else:
            columns.append(inputs.column(field.name).cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _waiting(table: pa.Table) -> tuple[np.ndarray, list[str]]:
    """Per row: -1 if its values are known, else an index into the returned texts naming
    the nodes it waits for (its source info holds pending tokens)."""
    none = np.full(table.num_rows, -1, dtype=np.int64)
    info = [name for name in table.column_names if is_source_info(name)]
    if not any(_holds_pending(table.column(name)) for name in info):
        return none, []
    frame = pl.from_arrow(table.select(info))
    assert isinstance(frame, pl.DataFrame)
    lists = [_as_flat_list(pl.col(name), dtype) for name, dtype in frame.schema.items()]
    waits = frame.select(
        pl.concat_list(lists)
        .list.eval(
            pl.element()
            .filter(pl.element().str.starts_with(_PENDING_TOKEN))
            .str.strip_prefix(_PENDING_TOKEN)
            .str.split(", ")
            .explode()
        )
        .list.unique()
        .list.sort()
        .list.join(", ")
        .alias("waits")
    )["waits"]
    if not (waits.str.len_chars() > 0).any():
        return none, []
    texts, codes = np.unique(waits.to_numpy().astype(str), return_inverse=True)
    codes = codes.astype(np.int64)
    if "" in texts:
        blank = int(np.flatnonzero(texts == "")[0])
        codes = np.where(codes == blank, -1, codes - (codes > blank))
        texts = np.delete(texts, blank)
    return codes, texts.tolist()


def _holds_pending(column: pa.ChunkedArray) -> bool:
    """Whether a source-info column holds a pending token (a cheap test first)."""
    values: pa.ChunkedArray | pa.Array = column
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        values = pc.list_flatten(values)
    return bool(len(values)) and bool(pc.any(pc.starts_with(values, _PENDING_TOKEN)).as_py())


def _as_flat_list(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A source-info column as a flat list of tokens per row (batched columns hold lists)."""
    if not isinstance(dtype, pl.List):
        return pl.concat_list(expr)
    while isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.List):
        expr = expr.list.eval(pl.element().explode())
        dtype = dtype.inner
    return expr
