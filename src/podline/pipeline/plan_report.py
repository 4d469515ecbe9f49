"""What ``pipeline.plan()`` and ``pipeline.explain()`` return: per node and per row, what the
next run would do and why, as a terminal table (``str``), HTML in Jupyter (``_repr_html_``)
and polars frames for scripts.

Per row, a status: for function nodes those of a run (``computed``, ``cached``, ``skipped``,
``failed``) and ``pending`` (its input waits for a call upstream, so only the run can tell);
for source and operator nodes ``known`` (its values are known now) or ``pending``. And a
reason with its detail: ``stored result`` (cached), ``same call as another row`` (cached: its
argument packet is computed for an earlier row of the run), ``stored SKIP`` (skipped),
``input file missing`` (failed, without a call), ``pending upstream`` (naming the node it
waits for), and for computed rows: ``forced recompute``, ``output file missing``, ``output
file changed``, ``changed code``, ``changed function``, ``changed input content``, ``hash
scheme changed``, ``stored result missing`` or ``new input row`` (see
``podline.pipeline.plan_history``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from podline.errors import InputValidationError, PipelineError, format_names
from podline.value_text import short_repr

if TYPE_CHECKING:
    import polars as pl

__all__ = ["STATUSES", "Explanation", "NodePlan", "Plan", "RowPlans"]

#: Per-row statuses, by index: the four of ``RowStatus`` first, in its order.
STATUSES = ("computed", "cached", "skipped", "failed", "pending", "known")
PENDING = STATUSES.index("pending")
KNOWN = STATUSES.index("known")
_COUNTED = ("computed", "cached", "skipped", "failed", "pending")
#: Rows an explanation prints before saying how many more there are.
_SHOWN_ROWS = 20


@dataclass
class RowPlans:
    """Per row of one node: its user tag values, status (index into ``STATUSES``) and why
    (index into ``reasons``, pairs of reason and detail)."""

    tags: pa.Table
    status: np.ndarray
    why: np.ndarray
    reasons: list[tuple[str, str]]

    def frame(self, rows: np.ndarray | None = None) -> pl.DataFrame:
        """The rows (all, or those at ``rows``) as a frame: tags, status, reason, detail."""
        import polars as pl

        tags, status, why = self.tags, self.status, self.why
        if rows is not None:
            tags = tags.take(pa.array(rows, pa.int64()))
            status, why = status[rows], why[rows]
        frame = pl.from_arrow(tags) if tags.num_columns else pl.DataFrame()
        assert isinstance(frame, pl.DataFrame)
        reasons = self.reasons or [("", "")]
        return frame.with_columns(
            pl.Series("status", np.array(STATUSES)[status], dtype=pl.String),
            pl.Series("reason", [reasons[i][0] for i in why.tolist()], dtype=pl.String),
            pl.Series("detail", [reasons[i][1] for i in why.tolist()], dtype=pl.String),
        )


@dataclass
class NodePlan:
    """What the next run would do with one node's rows."""

    label: str
    kind: str
    rows: RowPlans
    #: Output rows the run would give if every call succeeds and every pending row gives one.
    output_rows: int

    def count(self, status: str) -> int:
        """How many rows have ``status`` (one of ``STATUSES``)."""
        return int(np.count_nonzero(self.rows.status == STATUSES.index(status)))

    @property
    def computed(self) -> int:
        return self.count("computed")

    @property
    def cached(self) -> int:
        return self.count("cached")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def pending(self) -> int:
        return self.count("pending")

    def why(self) -> list[tuple[str, str, str, int]]:
        """(status, reason, detail, rows) for each distinct reason, in status order."""
        if not len(self.rows.status):
            return []
        width = max(len(self.rows.reasons), 1)
        pairs = self.rows.status.astype(np.int64) * width + self.rows.why
        values, counts = np.unique(pairs, return_counts=True)
        out = []
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            status, why = divmod(value, width)
            reason, detail = self.rows.reasons[why] if self.rows.reasons else ("", "")
            out.append((STATUSES[status], reason, detail, count))
        return out


class Plan:
    """What ``pipeline.run()`` would do, computed without calling any function or writing to
    any store: ``str(plan)`` prints it; ``counts()``, ``reasons()`` and ``rows(node)`` give
    polars frames; ``explain(node, **tags)`` the rows of one node."""

    def __init__(self, pipeline_uri: str, nodes: Sequence[NodePlan]) -> None:
        self.pipeline_uri = pipeline_uri
        self.nodes: dict[str, NodePlan] = {node.label: node for node in nodes}

    def __getitem__(self, label: str) -> NodePlan:
        return self._node(label)

    def _node(self, label: str) -> NodePlan:
        if label not in self.nodes:
            raise PipelineError(
                f"the plan has no node {label!r}; nodes are {format_names(self.nodes)}"
            )
        return self.nodes[label]

    def counts(self) -> pl.DataFrame:
        """Per node: its kind, output rows, and its rows computed, cached, skipped, failed
        and pending (for function nodes; source and operator nodes compute nothing)."""
        import polars as pl

        return pl.DataFrame(
            [
                {
                    "node": n.label,
                    "kind": n.kind,
                    "rows": n.output_rows,
                    **{s: n.count(s) for s in _COUNTED},
                }
                for n in self.nodes.values()
            ],
            schema={"node": pl.String, "kind": pl.String, "rows": pl.Int64}
            | dict.fromkeys(_COUNTED, pl.Int64),
        )

    def reasons(self) -> pl.DataFrame:
        """Per node and distinct reason: the status, reason, detail and how many rows."""
        import polars as pl

        rows = [
            {"node": n.label, "status": s, "reason": r, "detail": d, "rows": c}
            for n in self.nodes.values()
            for s, r, d, c in n.why()
            if s != "known"
        ]
        schema = dict.fromkeys(("node", "status", "reason", "detail"), pl.String)
        return pl.DataFrame(rows, schema=schema | {"rows": pl.Int64})

    def rows(self, node: str) -> pl.DataFrame:
        """Every row of ``node``: its tags, status, reason and detail."""
        return self._node(node).rows.frame()

    def explain(self, node: str, **tag_values: Any) -> Explanation:
        """The rows of ``node`` whose tags equal ``tag_values`` (every row without any)."""
        import polars as pl

        plan = self._node(node)
        names = plan.rows.tags.column_names
        unknown = sorted(set(tag_values) - set(names))
        if unknown:
            raise InputValidationError(
                f"node {node!r} has no tag column(s) {format_names(unknown)}; "
                f"its tags are {format_names(names)}"
            )
        frame = plan.rows.frame().with_row_index("__row")
        for name, value in tag_values.items():
            frame = frame.filter(pl.col(name).is_null() if value is None else pl.col(name) == value)
        return Explanation(plan, dict(tag_values), frame.drop("__row"))

    # ------------------------------------------------------------------ display
    def _table(self) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        header = ("node", "kind", "rows", *_COUNTED)
        rows = []
        for n in self.nodes.values():
            counts = [str(n.count(s)) for s in _COUNTED] if n.kind == "function" else [""] * 5
            if n.kind != "function" and n.pending:
                counts[-1] = str(n.pending)
            rows.append((n.label, n.kind, str(n.output_rows), *counts))
        return header, rows

    def _notes(self) -> list[str]:
        return [
            f"{n.label}: {c} {status}: {reason}" + (f" ({detail})" if detail else "")
            for n in self.nodes.values()
            for status, reason, detail, c in n.why()
            if status in ("computed", "failed", "pending") and n.kind == "function"
        ]

    def _title(self) -> str:
        return f"plan of {self.pipeline_uri}: what run() would do (nothing was computed)"

    def __str__(self) -> str:
        header, rows = self._table()
        notes = self._notes()
        lines = [self._title(), *text_table(header, rows)]
        if notes:
            lines += ["  why:", *(f"    {note}" for note in notes)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        header, rows = self._table()
        notes = "".join(f"<li>{html.escape(note)}</li>" for note in self._notes())
        return (
            f"<div><p><b>{html.escape(self._title())}</b></p>{html_table(header, rows)}"
            + (f"<p>why:</p><ul>{notes}</ul>" if notes else "")
            + "</div>"
        )


class Explanation:
    """Why the next run would do what it does with some rows of one node: ``frame`` holds
    them (tags, status, reason, detail); ``str`` and ``_repr_html_`` show them."""

    def __init__(self, node: NodePlan, tags: Mapping[str, Any], frame: pl.DataFrame) -> None:
        self.node = node.label
        self.kind = node.kind
        self.tags = dict(tags)
        self.frame = frame

    def _title(self) -> str:
        where = ", ".join(f"{k}={v!r}" for k, v in self.tags.items()) or "every row"
        return f"{self.kind} node {self.node}, {where}: {self.frame.height} row(s)"

    def _shown(self) -> tuple[tuple[str, ...], list[tuple[str, ...]], int]:
        header = tuple(self.frame.columns)
        shown = self.frame.head(_SHOWN_ROWS)
        rows = [tuple(_cell(v) for v in row) for row in shown.iter_rows()]
        return header, rows, self.frame.height - shown.height

    def __str__(self) -> str:
        header, rows, more = self._shown()
        lines = [self._title(), *text_table(header, rows)]
        if more:
            lines.append(f"  ... {more} more row(s) (.frame has them all)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        header, rows, more = self._shown()
        tail = f"<p>... {more} more row(s) (.frame has them all)</p>" if more else ""
        return (
            f"<div><p><b>{html.escape(self._title())}</b></p>{html_table(header, rows)}{tail}</div>"
        )


def _cell(value: Any) -> str:
    """A frame value in a table cell: text as itself, a long list shortened (``short_repr``)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else short_repr(value)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of an aligned table: the first column left-aligned, numbers right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if c.isdigit() or (not c and i) else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  " + "  ".join(parts).rstrip()

    return [line(header), *(line(r) for r in rows)]


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of these cells (escaped)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
