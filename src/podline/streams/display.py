"""How streams and nodes show themselves (``repr`` and Jupyter's ``_repr_html_``), computing
nothing.

A display names the stream, its schema, the chain of what produces it and whether its rows
are at hand. Rows (the first ten) are shown only when they already are: a table, a source, a
lazy stream that was read, a node that ran. A lazy stream that was not computed says so, and
says what computes it (``as_table()``, iteration or a pipeline run): showing a stream in a
notebook, or inside ``with Pipeline``, must neither call a function nor make a later run
compute twice.

Each stream says what it can show through ``_shown()`` (``Shown``); streams that are not
podline's own are shown by type and label.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from podline.schema import Schema, type_name

if TYPE_CHECKING:
    import polars as pl

    from podline.streams.table_stream import TableStream

__all__ = ["Showable", "Shown", "render_html", "render_text"]

_PREVIEW_ROWS = 10
#: The upstream chain is cut after this many lines or levels (a pipeline of hundreds of
#: nodes shows its nearest steps).
_CHAIN_LINES = 16
_CHAIN_DEPTH = 8


@dataclass(frozen=True)
class Shown:
    """What a stream can show without computing anything.

    ``kind`` names what it is (``CSVSource``, ``Join``, ``FunctionNode``); ``schema`` is its
    (tag, packet) schema, None when only computing would tell; ``rows`` its rows if they are
    at hand; ``upstreams`` what it is computed from; ``pending`` what to say when ``rows`` is
    None (``waiting`` in short).
    """

    kind: str
    rows: TableStream | None
    schema: tuple[Schema, Schema] | None
    upstreams: tuple[Any, ...] = ()
    pending: str = (
        "not computed (as_table() or iteration computes it; a pipeline's run() computes its nodes)"
    )
    #: ``pending`` in a word or two, for the upstream chain.
    waiting: str = "not computed"


@runtime_checkable
class Showable(Protocol):
    """A stream that can describe itself for display (every podline stream and node)."""

    label: str

    def _shown(self) -> Shown: ...


def render_text(stream: Showable) -> str:
    """The ``repr`` of a stream: header, schema, upstream chain, then the first rows."""
    import polars as pl

    shown = stream._shown()
    lines = [_header(stream, shown), *_schema_lines(shown)]
    chain = _chain(shown)
    if chain:
        lines += ["  upstream:", *(f"    {line}" for line in chain)]
    text = "\n".join(lines)
    if shown.rows is not None:
        with pl.Config(tbl_rows=_PREVIEW_ROWS, tbl_hide_dataframe_shape=True):
            text += f"\n{_preview(shown.rows)!r}{_more_rows(shown.rows)}"
    return text


def render_html(stream: Showable) -> str:
    """The ``_repr_html_`` of a stream: the same content as ``render_text``, as HTML."""
    shown = stream._shown()
    head = [_header(stream, shown), *(line.strip() for line in _schema_lines(shown))]
    parts = ["<div><p><b>" + "<br>".join(html.escape(line) for line in head) + "</b></p>"]
    chain = _chain(shown)
    if chain:
        parts.append("<pre>upstream:\n" + html.escape("\n".join(chain)) + "</pre>")
    if shown.rows is not None:
        more = html.escape(_more_rows(shown.rows).strip())
        parts.append(f"{_preview(shown.rows)._repr_html_()}<p>{more}</p>")
    return "".join(parts) + "</div>"


def _header(stream: Showable, shown: Shown) -> str:
    state = _rows(shown.rows) if shown.rows is not None else shown.pending
    return f"{type(stream).__name__} {stream.label!r}: {state}"


def _schema_lines(shown: Shown) -> list[str]:
    if shown.schema is None:
        return ["  schema:  known once computed"]
    tags, packets = shown.schema
    tag_text = ", ".join(f"{k}: {type_name(v)}" for k, v in tags.items()) or "(none)"
    packet_text = ", ".join(f"{k}: {type_name(v)}" for k, v in packets.items())
    return [f"  tags:    {tag_text}", f"  packets: {packet_text}"]


def _chain(shown: Shown) -> list[str]:
    """The upstreams as an indented tree, one line each; a stream reached again (a diamond)
    is named, not expanded twice. Long chains are cut with "…"."""
    lines: list[str] = []
    seen: set[int] = set()
    cut = False

    def walk(upstreams: tuple[Any, ...], depth: int) -> None:
        nonlocal cut
        for upstream in upstreams:
            if len(lines) >= _CHAIN_LINES or depth >= _CHAIN_DEPTH:
                cut = True
                return
            indent = "  " * depth
            if not isinstance(upstream, Showable):
                lines.append(f"{indent}{upstream.label} ({type(upstream).__name__})")
                continue
            if id(upstream) in seen:
                lines.append(f"{indent}{upstream.label} (shown above)")
                continue
            seen.add(id(upstream))
            inner = upstream._shown()
            state = _rows(inner.rows) if inner.rows is not None else inner.waiting
            lines.append(f"{indent}{upstream.label} ({inner.kind}, {state})")
            walk(inner.upstreams, depth + 1)

    walk(shown.upstreams, 0)
    return [*lines, "…"] if cut else lines


def _rows(rows: TableStream) -> str:
    n = len(rows)
    return f"{n} row" if n == 1 else f"{n} rows"


def _preview(rows: TableStream) -> pl.DataFrame:
    """The first rows only: showing a stream must not convert all of it."""
    import polars as pl

    frame = pl.from_arrow(rows.as_table().slice(0, _PREVIEW_ROWS))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _more_rows(rows: TableStream) -> str:
    hidden = len(rows) - _PREVIEW_ROWS
    return f"\n… {hidden} more rows" if hidden > 0 else ""
