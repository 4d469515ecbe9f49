"""Row lineage: ``trace`` (a node's rows back to their source records) and ``impact`` (a source
record forward to every row that depends on it).

**Method.** A row names its source records itself: its system tags hold, per lineage, a
source id and a record id, and a column's name spells out the joins its values passed
(``podline.columns``). So tracing needs no search through intermediate tables:

1. the traced rows are looked up by their tag values, or picked by position, among the node's
   rows as a read of it gives them (``lineage_rows.NodeRows``: its output, or the stored
   results of its current input; an operator node that has not run: its logged rows, with a
   store-side equality filter);
2. walking up the graph, each edge maps a column to its upstream's name (``lineage_rows.edges``:
   a join strips its hop, a batch splits a row's lists back into its rows), so every upstream
   row is known by its system-tag values alone;
3. a function step reads its provenance record (status, result id) and the earliest status
   row of its computing run with equality filters on those values; a source step looks its
   record up by record id.

Every lookup is an equality filter on a few columns: its cost is that of reading those columns,
never of joining or re-running anything. ``impact`` goes the other way: for each node below
the source, the lineages that come from it (edges again) and the rows holding the record.

A row that stops somewhere (a filter, a join without a match, a skipped call) is reported
where it stopped: ``trace`` of tag values a node lacks finds the nearest upstream node holding
them and reports its consumer as ``filtered`` (``skipped`` for a function that skipped them);
``impact`` reports the first node the record no longer reaches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import is_reserved
from podline.errors import InputValidationError, PipelineError, format_names
from podline.nodes import Node
from podline.nodes.records import STATUS
from podline.operators import MapTags
from podline.pipeline.lineage_calls import call
from podline.pipeline.lineage_report import Impact, Step, Trace
from podline.pipeline.lineage_rows import (
    Edge,
    LineageScope,
    edges,
    holding,
    is_list,
    lineage_pairs,
    packet_function,
    system_tag_types,
)
from podline.pipeline.spec import Identified
from podline.streams import ProducedStream

__all__ = ["LineageScope", "impact", "trace"]


def trace(
    scope: LineageScope, label: str, *, row: int | None = None, tags: Mapping[str, Any]
) -> Trace:
    """The lineage of the rows of node ``label`` whose tags equal ``tags`` (``row``: of its
    ``row``-th output row), each back to its source records."""
    node = scope.node(label, "trace")
    where = _user_tags(node, tags, "trace")
    if row is not None and where:
        raise InputValidationError(
            f"trace: node {label!r}: give row={row} or tag values {where}, not both"
        )
    found = scope.rows.find(node, where) if row is None else _nth(scope, node, row)
    if found is None:
        raise PipelineError(
            f"trace: the rows of node {label!r} are not at hand: it has not run in this "
            "process and stores no rows (an operator node stores them in LOG mode)"
        )
    if node.node_type == "function" and STATUS in found.column_names:
        found = found.filter(_produced(found))
    # Records of several input versions can hold the same row: it is traced once.
    # Each with its own tag values: positional record ids of a source whose rows changed
    # name other rows in other versions, which a lookup by system tags alone would mix in.
    names, _ = node.keys()
    keys = {
        repr((k, t)): (k, t)
        for k, t in (
            (_key(found, i, node), {n: found.column(n)[i].as_py() for n in names})
            for i in range(found.num_rows)
        )
    }
    roots = [_step(scope, node, key, tags) for key, tags in keys.values()]
    if not roots and where:
        roots = _stopped(scope, node, where)
    return Trace(label, where, roots, row=row)


def _nth(scope: LineageScope, node: Node, row: int) -> pa.Table | None:
    """The node's ``row``-th row as a read of it gives it, or for an operator node that has
    not run here, as its runs logged them (None: not at hand)."""
    rows = scope.rows.held(node)
    if rows is None:
        rows = scope.rows.find(node, {})
    if rows is not None and not 0 <= row < rows.num_rows:
        raise InputValidationError(
            f"trace: node {node.label!r} has no row {row}: a read of it gives "
            f"{rows.num_rows} row(s)"
        )
    return None if rows is None else rows.slice(row, 1)


def _user_tags(node: Node, tags: Mapping[str, Any], what: str) -> dict[str, Any]:
    names, _ = node.keys()
    unknown = sorted(set(tags) - set(names))
    if unknown:
        raise InputValidationError(
            f"{what}: node {node.label!r} has no tag column(s) {format_names(unknown)}; its "
            f"tags are {format_names(names)}"
        )
    return dict(tags)


def _produced(records: pa.Table) -> pa.Array:
    return pc.not_equal(records.column(STATUS), "skipped")


def _key(table: pa.Table, i: int, node: Node) -> dict[str, Any]:
    """Row ``i``'s system-tag values (of the node's columns)."""
    return {name: table.column(name)[i].as_py() for name in system_tag_types(node)}


def _step(
    scope: LineageScope, node: Node, key: dict[str, Any], hint: Mapping[str, Any] | None = None
) -> Step:
    """The step of ``node``'s row known by its system tags ``key``, and everything above.
    ``hint``: the tag values of the row below (or the traced row's own), which pick the row
    among several a key names (record ids of a source whose rows changed between runs)."""
    if node.node_type == "source":
        return _source_step(scope, node, key, hint)
    step = Step(node.label, node.node_type, _operation(node))
    rows = _agreeing(node, scope.rows.find(node, key), hint)
    if rows is not None and rows.num_rows:
        step.tags = _tags_of(node, rows)
    step.status = "not at hand" if rows is None else "passed"
    if node.node_type == "function":
        call(scope, node, key, step, rows)
    below = _upstream_names(node, step.tags or hint or {})
    for edge in edges(node):
        sub = {edge.names[n]: key[n] for n in edge.names}
        if edge.gathers:
            size = max((len(v) for v in sub.values() if isinstance(v, list)), default=0)
            for i in range(size):
                step.children.append(
                    _step(
                        scope,
                        edge.upstream,
                        {k: _item(v, i) for k, v in sub.items()},
                        {k: _item(v, i) for k, v in below.items()},
                    )
                )
        else:
            step.children.append(_step(scope, _holder(scope, edge, sub), sub, below))
    return step


def _upstream_names(node: Node, tags: Mapping[str, Any]) -> dict[str, Any]:
    """A row's tag values as ``node``'s upstream names them: renamed back through a
    ``MapTags`` (``{"a": "b", "b": "a"}`` swaps two names: comparing by the new names would
    set the upstream row against the wrong tags), unchanged through every other node."""
    producer = node.stream.producer if isinstance(node.stream, ProducedStream) else None
    if not isinstance(producer, MapTags):
        return dict(tags)
    back = {new: old for old, new in producer.name_map.items()}
    return {back.get(name, name): value for name, value in tags.items()}


def _agreeing(node: Node, rows: pa.Table | None, hint: Mapping[str, Any] | None) -> pa.Table | None:
    """The ``rows`` whose tag values agree with ``hint`` on the tag columns both have (none
    may: the rows a key names in other versions are not the traced row's)."""
    if rows is None or not rows.num_rows or not hint:
        return rows
    names, _ = node.keys()
    shared = [n for n in names if n in hint and n in rows.column_names]
    if not shared:
        return rows
    agree = [
        all(_same(rows.column(n)[i].as_py(), hint[n]) for n in shared) for i in range(rows.num_rows)
    ]
    return rows.filter(pa.array(agree, pa.bool_()))


def _item(value: Any, i: int) -> Any:
    return value[i] if isinstance(value, list) else value


def _holder(scope: LineageScope, edge: Edge, key: dict[str, Any]) -> Node:
    """The upstream that holds the row: a join may have exchanged the slots of inputs with
    equal pipeline hashes, so among such twins the one whose rows hold ``key`` wins."""
    for candidate in (edge.upstream, *edge.twins):
        rows = scope.rows.find(candidate, key)
        if rows is not None and rows.num_rows:
            return candidate
    return edge.upstream


def _operation(node: Node) -> str:
    function = packet_function(node)
    if function is not None:
        return function.name
    if isinstance(node.stream, ProducedStream):
        return node.stream.producer.label
    return type(node.stream).__name__


def _same(a: Any, b: Any) -> bool:
    """Equal tag values, NaN equal to NaN (a tag can be NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _tags_of(node: Node, rows: pa.Table) -> dict[str, Any]:
    names, _ = node.keys()
    return {name: rows.column(name)[0].as_py() for name in names}


def _source_step(
    scope: LineageScope, node: Node, key: dict[str, Any], hint: Mapping[str, Any] | None = None
) -> Step:
    ((sid, rid),) = lineage_pairs(key)
    step = Step(node.label, "source", _operation(node), status="read")
    step.source_id, step.record_id = key[sid], key[rid]
    rows = _agreeing(node, scope.rows.find(node, key), hint)
    if rows is None or not rows.num_rows:
        step.status = "unreadable"
        return step
    names = [c for c in rows.column_names if not is_reserved(c)]
    step.values = {c: rows.column(c)[0].as_py() for c in names}
    step.tags = _tags_of(node, rows)
    return step


def _stopped(scope: LineageScope, node: Node, where: dict[str, Any]) -> list[Step]:
    """Where rows with tags ``where`` stopped above ``node``: the consumer of the nearest
    upstream rows holding them, reported as filtered (or skipped), with their lineage."""
    for upstream in node.upstreams:
        names, _ = upstream.keys()
        shared = {k: v for k, v in where.items() if k in names}
        if not shared:
            continue
        rows = scope.rows.find(upstream, shared)
        if rows is not None and rows.num_rows:
            status = _stop_status(scope, node, _key(rows, 0, upstream))
            stop = Step(node.label, node.node_type, _operation(node), status=status)
            stop.tags = dict(where)
            stop.children = [
                _step(scope, upstream, _key(rows, i, upstream)) for i in range(rows.num_rows)
            ]
            return [stop]
        deeper = _stopped(scope, upstream, shared)
        if deeper:
            return deeper
    return []


def _stop_status(scope: LineageScope, node: Node, key: dict[str, Any]) -> str:
    """Why a row with system tags ``key`` is not among ``node``'s rows: an operator filtered
    it (or a join found no match for it); a function skipped it (its record says so) or
    did not compute it (the call failed, or has not run)."""
    if node.node_type != "function":
        return "filtered"
    records = scope.rows.recorded(node, key)
    skipped = records is not None and "skipped" in records.column(STATUS).to_pylist()
    return "skipped" if skipped else "not computed"


def impact(
    scope: LineageScope,
    source: str,
    *,
    record_id: str | None = None,
    tags: Mapping[str, Any],
) -> Impact:
    """Every row of every node that depends on the records of ``source`` (a source node's
    label or a source id) with ``record_id`` or whose tags equal ``tags``."""
    node = _source_node(scope, source)
    ((sid, rid),) = lineage_pairs(system_tag_types(node))
    where = _user_tags(node, tags, "impact")
    if record_id is not None:
        where[rid] = str(record_id)
    found = scope.rows.find(node, where)
    if found is not None:
        records = found.select([sid, rid]).to_pylist()
        if not records:
            asked = {**tags, **({} if record_id is None else {"record_id": record_id})}
            named = ", ".join(f"{k}={v!r}" for k, v in asked.items())
            raise InputValidationError(f"impact: source {node.label!r} has no record with {named}")
    elif record_id is not None and not tags:
        # A source that cannot be read again (a loaded pipeline's): its record ids still
        # name its records in every row below it; its source id is not known.
        records = [{sid: None, rid: str(record_id)}]
    else:
        raise PipelineError(
            f"impact: the rows of source {node.label!r} cannot be read; name its records by "
            "record_id= alone"
        )
    rows: list[dict[str, Any]] = []
    for record in records:
        rows += _forward(scope, node, record[sid], record[rid])
    if found is None and rows and all(row["tags"] is None for row in rows):
        # Nothing below holds the record, and the source cannot say whether it has one:
        # "not computed" at every function would read as work left undone.
        raise InputValidationError(
            f"impact: no stored row below source {node.label!r} holds record_id "
            f"{record_id!r} (the source's rows cannot be read here to tell whether it has "
            "such a record; a trace shows the record ids of a row)"
        )
    return Impact(node.label, record_id, dict(tags), rows)


def _source_node(scope: LineageScope, source: str) -> Node:
    if source in scope.graph.by_label and scope.graph.by_label[source].node_type == "source":
        return scope.graph.by_label[source]
    for node in scope.graph:
        if node.node_type == "source" and isinstance(node.stream, Identified):
            if node.stream.source_id != source:
                continue
            return node
    sources = [n.label for n in scope.graph if n.node_type == "source"]
    raise PipelineError(
        f"impact names no source: {source!r} is neither the label nor the source id of a "
        f"source node; source nodes are {format_names(sources)}"
    )


def _forward(
    scope: LineageScope, source: Node, source_id: str | None, record: str
) -> list[dict[str, Any]]:
    """The rows below ``source`` holding the record, node by node in topological order."""
    (own,) = lineage_pairs(system_tag_types(source))
    origin: dict[int, set[tuple[str, str]]] = {id(source): {own}}
    reached: dict[int, bool] = {id(source): True}
    out: list[dict[str, Any]] = []
    for node in scope.graph:
        if node is source or node.node_type == "source":
            continue
        pairs = _pairs_from(node, origin)
        if not pairs:
            continue
        origin[id(node)] = pairs
        above = any(reached.get(id(u), False) for u in node.upstreams)
        if not above:
            continue  # stopped further up, reported there
        found = _holding(scope, node, source_id, record, pairs)
        reached[id(node)] = found is None or any(f["status"] != "skipped" for f in found)
        base = {"node": node.label, "kind": node.node_type, "source_id": source_id}
        base["record_id"] = record
        if found is None:
            out.append({**base, "status": "not at hand", "tags": None})
        elif not found:
            status = "not computed" if node.node_type == "function" else "filtered"
            out.append({**base, "status": status, "tags": None})
        out += [{**base, **entry} for entry in found or ()]
    return out


def _pairs_from(node: Node, origin: dict[int, set[tuple[str, str]]]) -> set[tuple[str, str]]:
    """The lineage pairs of ``node`` whose values come from the traced source's lineage."""
    pairs: set[tuple[str, str]] = set()
    for edge in edges(node):
        upstream = origin.get(id(edge.upstream), set())
        back = {v: k for k, v in edge.names.items()}
        pairs |= {(back[s], back[r]) for s, r in upstream if s in back and r in back}
    return pairs


def _holding(
    scope: LineageScope,
    node: Node,
    source_id: str | None,
    record: str,
    pairs: set[tuple[str, str]],
) -> list[dict[str, Any]] | None:
    """The node's rows holding the record in any of ``pairs``: their tags and status."""
    names, _ = node.keys()
    types = system_tag_types(node)
    batched = any(is_list(types[r]) for _, r in pairs)
    tables = []
    # A function's rows come from its records, which also know the rows it skipped.
    recorded = node.node_type == "function"
    for pair in sorted(pairs):
        if batched:
            table = scope.rows.scan(node, [*names, *types], recorded=recorded)
            if table is not None:
                table = table.filter(pa.array(holding(table, source_id, record, pair)))
        elif recorded:
            table = scope.rows.recorded(node, _holds(pair, source_id, record))
        else:
            table = scope.rows.find(node, _holds(pair, source_id, record))
        if table is None:
            return None
        tables.append(_read_now(scope, node, table) if recorded else table)
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for table in tables:
        statuses = table.column(STATUS).to_pylist() if STATUS in table.column_names else None
        for i in range(table.num_rows):
            row_key = repr(_key(table, i, node))
            if row_key in seen:
                continue  # a diamond's row holds the record in two lineages (or two versions)
            seen.add(row_key)
            status = "present" if statuses is None else str(statuses[i])
            found.append({"status": status, "tags": {n: table.column(n)[i].as_py() for n in names}})
    return found


def _read_now(scope: LineageScope, node: Node, records: pa.Table) -> pa.Table:
    """The records of a function node that speak of its rows as a read of it gives them, as
    ``trace`` finds them: records are shared by every input version, so a row the current
    input no longer gives keeps its record. A skipped call gives no row: its record counts
    unless the read holds the row (then the call was skipped for another version)."""
    keep = []
    for i, status in enumerate(records.column(STATUS).to_pylist()):
        rows = scope.rows.find(node, _key(records, i, node))
        keep.append(rows is None or bool(rows.num_rows) != (status == "skipped"))
    return records.filter(pa.array(keep, pa.bool_()))


def _holds(pair: tuple[str, str], source_id: str | None, record: str) -> dict[str, str]:
    """The test of a lineage ``pair`` holding a record (any source id when not known)."""
    return {pair[1]: record} if source_id is None else {pair[0]: source_id, pair[1]: record}
