"""Values as text: one complete, stable text for a value of any type, and a short one for people.

``as_text`` is how a tag column reads as text where its type cannot stay (``status()`` and
``logs()`` over nodes that disagree on a tag's type: an int here, a list of ints after a batch
there) and how ``podline status --tag NAME=VALUE`` compares: a string is itself; a number,
boolean, date or time is written as polars casts it to text (``1``, ``2.5``, ``true``);
binary is hex; a list or struct is JSON as ``json.dumps`` writes it (``[0, 1, 2]``,
``["a", "b"]``, ``{"x": 1}``; values JSON has no type for, inside, as their ``str``). Nothing
is cut, and equal values always give equal text. Nulls stay null.

``short_repr`` and ``short_text`` are how a terminal shows a value: a list or struct as JSON text,
but a list of more than three items keeps its first two, ``…`` and its last, as polars prints
lists (``[0, 1, … 1283]``); text written by ``as_text`` for a list or struct is shown as that
value; other text longer than 80 characters is cut with ``…`` (polars' cut of text cells, as
``podline status`` sets it). ``short_repr`` writes other values (text too) as ``repr`` does,
``short_text`` is for text cells, shown as themselves. Text renderings use them; frames and JSON
output keep every value whole.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = ["as_text", "short_repr", "short_text"]

# As polars shows list cells (``fmt_table_cell_list_len``) and as ``podline status`` cuts text
# cells (``fmt_str_lengths``).
_LIST_ITEMS = 3
_STRING_CHARS = 80


def as_text(column: pl.Series) -> pl.Series:
    """``column``'s values as text (see the module docs)."""
    import polars as pl  # (not at import: ``short_repr``'s users need no polars)

    dtype = column.dtype
    if dtype == pl.String:
        return column
    if dtype.is_nested():
        texts = [None if v is None else _json(v) for v in column.to_list()]
        return pl.Series(column.name, texts, dtype=pl.String)
    if dtype == pl.Binary:
        return column.bin.encode("hex")
    return column.cast(pl.String)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def short_repr(value: Any) -> str:
    """``value`` as ``repr`` writes it, lists and long text shortened (see the module docs)."""
    if isinstance(value, str):
        held = _held(value)
        return repr(_cut(value)) if held is None else _short(held)
    return _short(value) if isinstance(value, list | Mapping) else repr(value)


def short_text(text: str) -> str:
    """``text`` as a table cell shows it, lists and long text shortened (see the module docs)."""
    held = _held(text)
    return _cut(text) if held is None else _short(held)


def _held(text: str) -> list[Any] | dict[str, Any] | None:
    """The list or struct a JSON text holds (``as_text`` wrote it), else None."""
    if not text.startswith(("[", "{")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, list | dict) else None


def _cut(text: str) -> str:
    return text if len(text) <= _STRING_CHARS else text[: _STRING_CHARS - 1] + "…"


def _short(value: Any) -> str:
    """JSON text of ``value``, its lists shortened as polars prints them."""
    if isinstance(value, list):
        if len(value) <= _LIST_ITEMS:
            return "[" + ", ".join(map(_short, value)) + "]"
        head = ", ".join(map(_short, value[: _LIST_ITEMS - 1]))
        return f"[{head}, … {_short(value[-1])}]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_json(str(k))}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return _json(_cut(value))
    return _json(value)
