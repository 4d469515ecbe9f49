"""Where lineage reads rows from: a node's rows looked up by column values, from what is at hand.

Lineage never computes. A node's rows come from, in this order:

* a read of the node (``node.as_table()``, passive): the output it holds in this process
  (it ran, or was read before), else a source's rows, and a function node's stored results
  of its current input (every stored result where that input cannot be read: a loaded
  pipeline's source built from data in memory);
* an operator node that has not run: its logged rows (``CacheMode.LOG`` / ``REPLAY``),
  looked up with the store's equality filter (``scan(where=)``), so only the matching rows
  leave the store;
* a function node's provenance records (``pipelines/<name>/nodes/.../records``: tags, system
  tags and each entry's status, every input version's), looked up the same way, for what a
  read does not hold: a call's status and result id, the rows a call skipped.

An operator node with no logged rows answers ``None`` ("not at hand"). List-valued columns
(after a ``Batch``) cannot be filtered by a store; they are matched in memory after a
projected scan.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import is_system_tag, parse_system_tag
from podline.errors import PipelineError, format_names
from podline.functions import PacketFunction
from podline.nodes import Node
from podline.nodes.records import RESULT_ID, STATUS, ProvenanceRecords
from podline.pipeline.graph import PipelineGraph
from podline.stores import Store
from podline.streams import TableStream

__all__ = [
    "Edge",
    "LineageScope",
    "NodeRows",
    "RecordedNode",
    "StoredNode",
    "edges",
    "is_list",
    "match",
    "select",
]


@runtime_checkable
class RecordedNode(Protocol):
    """A function node as lineage reads it: its function and its provenance records."""

    @property
    def records(self) -> ProvenanceRecords | None: ...


@runtime_checkable
class PickedNode(Protocol):
    """A function node whose stored results lineage reads for some rows of its input."""

    def stored_output_of(self, pick: Callable[[pa.Table], pa.Table]) -> TableStream | None: ...


@runtime_checkable
class StoredNode(Protocol):
    """An operator node with a scope of the store, where LOG mode keeps its rows."""

    store: Store | None


def packet_function(node: Node) -> PacketFunction | None:
    """The function of a function node (None for other nodes or without records)."""
    records = node.records if isinstance(node, RecordedNode) else None
    return records.function if records is not None else None


def is_list(tp: pa.DataType) -> bool:
    """Whether a column of this type holds lists (a batched column)."""
    return bool(pa.types.is_list(tp) or pa.types.is_large_list(tp))


#: Per node (a node's schema never changes): its system-tag types, and its edges. Planning
#: an operator's schema is not free, and a trace asks for the same nodes again and again.
_TYPES: weakref.WeakKeyDictionary[Node, dict[str, pa.DataType]] = weakref.WeakKeyDictionary()
_EDGES: weakref.WeakKeyDictionary[Node, list[Edge]] = weakref.WeakKeyDictionary()


def system_tag_types(node: Node) -> dict[str, pa.DataType]:
    """The node's system-tag columns and their Arrow types."""
    if node not in _TYPES:
        tags, _ = node.output_schema(system_tags=True)
        _TYPES[node] = {f.name: f.type for f in tags.to_arrow() if is_system_tag(f.name)}
    return _TYPES[node]


@dataclass(frozen=True)
class Edge:
    """How a node's system tags come from one upstream: ``names`` maps a column at the node to
    the column at the upstream; ``gathers``: the node holds lists of the upstream's values
    (a batch); ``twins``: other upstreams with the same pipeline hash, whose slots a join may
    have exchanged row by row."""

    upstream: Node
    names: dict[str, str]
    gathers: bool
    twins: tuple[Node, ...] = ()


def edges(node: Node) -> list[Edge]:
    """``node``'s edges (see ``_edges``), worked out once per node."""
    if node not in _EDGES:
        _EDGES[node] = _edges(node)
    return _EDGES[node]


def _edges(node: Node) -> list[Edge]:
    """The edges of ``node`` to its upstreams, read from the system-tag column names alone.

    A join extends every input's names with ``::<input hash>:<canonical position>``
    (``columns.extend_lineage``); every other operator and a function pass names unchanged
    from the first upstream that has them (a semi-join keeps its left input's).
    """
    own = system_tag_types(node)
    ups = node.upstreams
    order = sorted(range(len(ups)), key=lambda i: str(ups[i].pipeline_hash()))
    extended: dict[str, tuple[int, str]] = {}
    for position, index in enumerate(order):
        prefix = ups[index].pipeline_hash().hex[:12]
        for name in system_tag_types(ups[index]):
            extended[f"{name}::{prefix}:{position}"] = (index, name)
    found: dict[int, dict[str, str]] = {}
    if own and set(own) == set(extended):
        for name in own:
            index, upstream_name = extended[name]
            found.setdefault(index, {})[name] = upstream_name
    else:
        for name in own:
            index = next(i for i, u in enumerate(ups) if name in system_tag_types(u))
            found.setdefault(index, {})[name] = name
    result = []
    for index, names in sorted(found.items()):
        upstream = ups[index]
        theirs = system_tag_types(upstream)
        gathers = any(is_list(own[n]) and not is_list(theirs[m]) for n, m in names.items())
        twins = tuple(
            u
            for i, u in enumerate(ups)
            if i != index and str(u.pipeline_hash()) == str(upstream.pipeline_hash())
        )
        result.append(Edge(upstream, names, gathers, twins))
    return result


def lineage_pairs(names: Any) -> list[tuple[str, str]]:
    """(source id column, record id column) of each lineage among these system-tag names."""
    by_lineage: dict[str, dict[str, str]] = {}
    for name in names:
        parsed = parse_system_tag(name)
        by_lineage.setdefault(parsed.lineage, {})[parsed.kind] = name
    return [(pair["source_id"], pair["record_id"]) for _, pair in sorted(by_lineage.items())]


def match(table: pa.Table, where: Mapping[str, Any]) -> np.ndarray:
    """Which rows of ``table`` hold every value of ``where`` (lists compare whole)."""
    mask = np.ones(table.num_rows, dtype=bool)
    for name, value in where.items():
        mask &= _equal(table.column(name), value)
    return mask


def select(table: pa.Table, where: Mapping[str, Any]) -> pa.Table:
    """The rows of ``table`` holding every value of ``where``: each test runs on the rows the
    previous ones kept, so a selective first test leaves the others almost nothing to do
    (record ids first: a source id is shared by every row of its source)."""
    for name, value in sorted(where.items(), key=lambda item: _selectivity(item[0])):
        if not table.num_rows:
            break
        table = table.filter(pa.array(_equal(table.column(name), value)))
    return table


def _selectivity(name: str) -> int:
    """Test order: record ids, then user columns, then source ids."""
    if not is_system_tag(name):
        return 1
    return 0 if parse_system_tag(name).kind == "record_id" else 2


def _equal(column: pa.ChunkedArray, value: Any) -> np.ndarray:
    if is_list(column.type):
        return _equal_lists(column, value)
    if value is None:
        return pc.is_null(column).to_numpy(zero_copy_only=False)
    if isinstance(value, float) and math.isnan(value) and pa.types.is_floating(column.type):
        test = pc.is_nan(column)  # a NaN tag matches NaN, as joins match it
    else:
        test = pc.equal(column, pa.scalar(value, column.type))
    return pc.fill_null(test, False).to_numpy(zero_copy_only=False)


def _equal_lists(column: pa.ChunkedArray, value: Any) -> np.ndarray:
    """Which lists of ``column`` equal ``value`` element by element (as Python's ``==`` on
    lists: nulls inside equal nulls), compared by polars in one pass; a value that cannot
    take the column's type equals no row."""
    import polars as pl

    series = pl.Series(column)
    if value is None:
        return series.is_null().to_numpy()
    try:
        wanted = pl.Series([value], dtype=series.dtype)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        return np.zeros(len(series), dtype=bool)
    return (series == wanted).fill_null(False).to_numpy()


def holding(table: pa.Table, source: str | None, record: str, pair: tuple[str, str]) -> np.ndarray:
    """Which rows of ``table`` hold the source record (``source``, ``record``) in the lineage
    ``pair`` of columns: equal values, or one element of their lists (a batch). A ``None``
    source matches any source id."""
    sid, rid = (table.column(c) for c in pair)
    if not is_list(rid.type):
        tests = {pair[1]: record} if source is None else {pair[0]: source, pair[1]: record}
        return match(table, tests)
    sid, rid = sid.combine_chunks(), rid.combine_chunks()
    hit = pc.equal(pc.list_flatten(rid), record)
    if source is not None:
        hit = pc.and_(pc.equal(pc.list_flatten(sid), source), hit)
    parents = pc.list_parent_indices(rid).to_numpy(zero_copy_only=False)
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[parents[pc.fill_null(hit, False).to_numpy(zero_copy_only=False)]] = True
    return mask


class NodeRows:
    """Rows of nodes by column values, from what is at hand (see the module docs)."""

    def __init__(self) -> None:
        self._tables: dict[int, pa.Table | None] = {}
        # One lookup per node and key: a step and the choice among twin inputs ask alike.
        self._found: dict[tuple[int, str, str], pa.Table | None] = {}

    def held(self, node: Node) -> pa.Table | None:
        """The node's whole output as a read of it gives it (``node.as_table()``, passive):
        what it holds in this process, else a source's rows and a function node's stored
        results of its current input. A read is what ``show`` and a script see, so lineage
        answers alike whether or not the node was read before. An operator node that has
        not run keeps nothing: None (its logged rows are found by ``find``)."""
        if id(node) not in self._tables:
            if not node.has_output and node.node_type == "operator":
                return None
            try:
                table = node.as_table(system_tags=True, source_info=True)
            except PipelineError:
                # A loaded pipeline's read-only source (``ReadOnlyNodeError``): its data
                # was not kept, and lineage names its records without their values.
                table = None
            self._tables[id(node)] = table
        return self._tables[id(node)]

    def find(self, node: Node, where: Mapping[str, Any]) -> pa.Table | None:
        """The node's rows holding every value of ``where`` (None: not at hand). A function
        node's rows come with their record's ``STATUS`` when read from its records."""
        key = (id(node), "rows", repr(sorted(where.items())))
        if key not in self._found:
            self._found[key] = self._find(node, where)
        return self._found[key]

    def _find(self, node: Node, where: Mapping[str, Any]) -> pa.Table | None:
        if id(node) not in self._tables and not node.has_output:
            picked = self._picked(node, where)
            if picked is not None:
                return picked
        table = self.held(node)
        if table is not None:
            return select(table, where)
        if isinstance(node, StoredNode) and node.store is not None:
            return _scan(node.store, ("rows",), where, None)
        return None

    def _picked(self, node: Node, where: Mapping[str, Any]) -> pa.Table | None:
        """A function node's rows holding ``where`` as a read of it gives them, found by
        picking its input's rows (its tags and system tags are its input's) and looking up
        only their results: a read of the whole node hashes every input row and reads every
        record (seconds at a million rows; a trace on a fresh object asks for one row).
        None for other nodes, where ``where`` names other columns, or where the input
        cannot be read."""
        if not isinstance(node, PickedNode):
            return None
        tags, _ = node.keys(system_tags=True)
        if not set(where) <= set(tags):
            return None  # (an output column: only the node's output holds it)
        found = node.stored_output_of(lambda rows: select(rows, where))
        return None if found is None else found.as_table(system_tags=True, source_info=True)

    def recorded(self, node: Node, where: Mapping[str, Any]) -> pa.Table | None:
        """A function node's provenance records holding ``where`` (None: no records)."""
        key = (id(node), "records", repr(sorted(where.items())))
        if key not in self._found:
            records = node.records if isinstance(node, RecordedNode) else None
            columns = None if records is None else _record_columns(node)
            found = None if records is None else _scan(records.store, ("records",), where, columns)
            self._found[key] = found
        return self._found[key]

    def scan(self, node: Node, columns: list[str], *, recorded: bool = False) -> pa.Table | None:
        """Every row of the node, projected to ``columns`` (``recorded``: a function node's
        records, with their status and record id)."""
        if recorded:
            records = node.records if isinstance(node, RecordedNode) else None
            if records is None or not records.store.exists(("records",)):
                return None
            return records.store.scan(("records",), columns=[*columns, STATUS, RESULT_ID])
        table = self.held(node)
        if table is not None:
            return table
        if isinstance(node, StoredNode) and node.store is not None:
            return node.store.scan(("rows",), columns=columns)
        return None


def _record_columns(node: Node) -> list[str]:
    """What lineage reads of a record: tags, system tags, status and result id (not the
    long entry id and input hash, which it never needs)."""
    tags, _ = node.keys()
    return [*tags, *system_tag_types(node), STATUS, RESULT_ID]


def _scan(
    store: Store, path: tuple[str, ...], where: Mapping[str, Any], columns: list[str] | None
) -> pa.Table | None:
    """Rows at ``path`` holding ``where``: scalar tests go to the store, list ones after."""
    if not store.exists(path):
        return None
    scalar = {k: v for k, v in where.items() if not isinstance(v, list)}
    table = store.scan(path, columns=columns, where=scalar or None)
    if table is None:
        return None
    return select(table, {k: v for k, v in where.items() if isinstance(v, list)})


@dataclass
class LineageScope:
    """What lineage reads: a pipeline's graph, its store and its name."""

    graph: PipelineGraph
    store: Store
    name: str
    rows: NodeRows = field(default_factory=NodeRows)

    def node(self, label: str, what: str) -> Node:
        found = self.graph.by_label.get(label)
        if found is None:
            raise PipelineError(
                f"{what} names no node: {label!r}; nodes are {format_names(self.graph.by_label)}"
            )
        return found
