"""What ``pipeline.trace()`` and ``pipeline.impact()`` return: polars frames for scripts, a tree
in a terminal (``str``, ``tree()``) and HTML in Jupyter (``_repr_html_``).

A ``Trace`` holds one tree of ``Step`` per traced row: the row's node at the root, each step's
upstream steps below it, source records at the leaves. ``frame`` flattens the trees, one line
per step, depth first; ``records()`` keeps the leaves: the source records that formed each row.
An ``Impact`` holds one line per dependent row (or per stop) of every node below a source.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from podline.pipeline.plan_report import html_table
from podline.value_text import short_repr

__all__ = ["Impact", "Step", "Trace"]

#: The columns of ``Trace.frame``, and their types.
TRACE_COLUMNS: dict[str, Any] = {
    "row": pl.Int64,
    "step": pl.String,
    "depth": pl.Int64,
    "node": pl.String,
    "kind": pl.String,
    "operation": pl.String,
    "status": pl.String,
    "tags": pl.String,
    "function_version": pl.String,
    "code_identity": pl.String,
    "function_identity": pl.String,
    "result_id": pl.String,
    "run_id": pl.String,
    "source_id": pl.String,
    "record_id": pl.String,
    "values": pl.String,
}
IMPACT_COLUMNS: dict[str, Any] = {
    "node": pl.String,
    "kind": pl.String,
    "status": pl.String,
    "tags": pl.String,
    "source_id": pl.String,
    "record_id": pl.String,
}


def _text(values: dict[str, Any] | None, shown: Callable[[Any], str] = repr) -> str | None:
    """Tag or column values as ``name=value`` text, each value as ``shown`` writes it: whole
    (``repr``) in frames, shortened (``short_repr``: long lists) in the trees people read."""
    if values is None:
        return None
    return ", ".join(f"{k}={shown(v)}" for k, v in values.items())


def _json(values: dict[str, Any] | None) -> str | None:
    return None if values is None else json.dumps(values, default=str)


@dataclass
class Step:
    """One node a traced row passed: what the node does, the row's status there, and for a
    function its identity and computing run, for a source the record and its values."""

    node: str
    kind: str
    operation: str
    status: str = ""
    tags: dict[str, Any] | None = None
    function_version: str | None = None
    code_identity: str | None = None
    function_identity: str | None = None
    result_id: str | None = None
    run_id: str | None = None
    source_id: str | None = None
    record_id: str | None = None
    values: dict[str, Any] | None = None
    children: list[Step] = field(default_factory=list)

    def walk(self, path: str = "0", depth: int = 0) -> list[tuple[str, int, Step]]:
        """This step and those below it, depth first, with their path and depth."""
        out = [(path, depth, self)]
        for i, child in enumerate(self.children):
            out += child.walk(f"{path}.{i}", depth + 1)
        return out

    def line(self) -> str:
        """How the tree shows this step."""
        text = f"{self.node} [{self.kind}: {self.operation}] {self.status}"
        if self.tags:
            text += f"  ({_text(self.tags, short_repr)})"
        if self.function_identity is not None:
            code = f", code {self.code_identity}" if self.code_identity else ""
            text += f"  version {self.function_version}{code}, run {self.run_id or '?'}"
        if self.record_id is not None:
            text += f"  record {self.source_id}/{self.record_id}"
            if self.values is not None:
                text += f": {_text(self.values, short_repr)}"
        return text


def _drawn(step: Step, first: str, rest: str) -> list[str]:
    """A step's line (after ``first``) and its children's, drawn as a tree below it."""
    lines = [first + step.line()]
    for i, child in enumerate(step.children):
        last = i == len(step.children) - 1
        lines += _drawn(
            child, rest + ("└── " if last else "├── "), rest + ("    " if last else "│   ")
        )
    return lines


class Trace:
    """The lineage of some rows of one node (see the module docs): those whose tags equal
    ``tags``, or its ``row``-th row."""

    def __init__(
        self, node: str, tags: dict[str, Any], roots: list[Step], *, row: int | None = None
    ) -> None:
        self.node = node
        self.tags = tags
        self.row = row
        self.roots = roots
        self.frame = self._frame()

    def _frame(self) -> pl.DataFrame:
        rows = []
        for index, root in enumerate(self.roots):
            for path, depth, step in root.walk():
                rows.append(
                    {
                        "row": index,
                        "step": path,
                        "depth": depth,
                        **{
                            name: getattr(step, name)
                            for name in TRACE_COLUMNS
                            if name not in ("row", "step", "depth", "tags", "values")
                        },
                        "tags": _text(step.tags),
                        "values": _json(step.values),
                    }
                )
        return pl.DataFrame(rows, schema=TRACE_COLUMNS)

    def records(self) -> pl.DataFrame:
        """The source records of each traced row: row, source node, source id, record id."""
        leaves = self.frame.filter(pl.col("record_id").is_not_null())
        picked = leaves.select("row", pl.col("node").alias("source"), "source_id", "record_id")
        return picked.unique(maintain_order=True)

    def _title(self) -> str:
        where = f"row {self.row}" if self.row is not None else _text(self.tags) or "every row"
        return f"trace of {self.node}, {where}: {len(self.roots)} row(s)"

    def tree(self) -> str:
        """The lineage as an indented tree, one traced row after the other."""
        lines = [self._title()]
        for root in self.roots:
            lines += _drawn(root, "  ", "  ")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.tree()

    def __repr__(self) -> str:
        return self.tree()

    def _repr_html_(self) -> str:
        def item(step: Step) -> str:
            below = "".join(item(child) for child in step.children)
            return f"<li>{html.escape(step.line())}{f'<ul>{below}</ul>' if below else ''}</li>"

        body = "".join(item(root) for root in self.roots)
        return f"<div><p><b>{html.escape(self._title())}</b></p><ul>{body}</ul></div>"


class Impact:
    """The rows that depend on some records of one source (see the module docs)."""

    def __init__(
        self, source: str, record_id: str | None, tags: dict[str, Any], rows: list[dict[str, Any]]
    ) -> None:
        self.source = source
        self.record_id = record_id
        self.tags = tags
        self.frame = pl.DataFrame(
            [{**row, "tags": _text(row["tags"])} for row in rows], schema=IMPACT_COLUMNS
        )
        self._short_tags = [_text(row["tags"], short_repr) for row in rows]

    def _title(self) -> str:
        asked = dict(self.tags)
        if self.record_id is not None:
            asked["record_id"] = self.record_id
        where = ", ".join(f"{k}={v!r}" for k, v in asked.items()) or "every record"
        return f"impact of {self.source}, {where}: {self.frame.height} row(s)"

    def tree(self) -> str:
        """The dependent rows, grouped by source record, then node."""
        lines = [self._title()]
        record = None
        for row, short_tags in zip(self.frame.iter_rows(named=True), self._short_tags, strict=True):
            if (row["source_id"], row["record_id"]) != record:
                record = (row["source_id"], row["record_id"])
                lines.append(f"  record {record[0] or '?'}/{record[1]}")
            tags = f"  ({short_tags})" if short_tags else ""
            lines.append(f"    {row['node']} [{row['kind']}] {row['status']}{tags}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.tree()

    def __repr__(self) -> str:
        return self.tree()

    def _repr_html_(self) -> str:
        header = tuple(self.frame.columns)
        rows = [tuple("" if v is None else str(v) for v in r) for r in self.frame.iter_rows()]
        return f"<div><p><b>{html.escape(self._title())}</b></p>{html_table(header, rows)}</div>"
