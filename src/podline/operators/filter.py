"""``Filter``: keep the rows that satisfy Polars expressions and equality constraints.

``Filter(pl.col("x") > 1, constraints={"subject": "a"})`` keeps a row when every predicate is
true and every constrained column equals its value (``None`` matches nulls); a predicate that
evaluates to null drops the row. Predicates see the tag and packet columns. The schema is
unchanged, every hidden column rides along, and kept rows stay in input order.

**Identity.** A predicate is identified by its serialized form,
``expr.meta.serialize(format="json")``: Polars' description of the expression tree, columns
and literals included. This makes a filter hashable, so it works inside a pipeline, with these
limits:

* the identity is syntactic: ``pl.col("x") > 1`` and ``pl.col("x") >= 2`` are different
  filters, and so are ``> 1`` and ``> 1.0`` (an int and a float literal);
* Polars does not promise that this form stays the same across its versions. A Polars upgrade
  that changes it changes the filter's identity (results are recomputed, never wrongly
  reused);
* expressions that call Python functions (``map_elements``, ``map_batches``, ``fold`` and
  the like) embed pickled code, which is not stable across Python versions or processes.
  They are rejected: use a function pod for such logic.

Predicates are unordered (``Filter(a, b)`` equals ``Filter(b, a)``); constraints are a
mapping, so their order never counts either.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from podline.errors import HashingError, format_names
from podline.hashing import Unordered, hash_value
from podline.operators.base import ROW_INDEX, Operator, StreamingStrategy, StreamSchema, take_rows
from podline.streams import Stream, TableStream

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Filter"]

# Keys under which Polars' JSON form holds pickled Python callables.
_PYTHON_CALLABLES = frozenset({"AnonymousFunction", "callback"})


class Filter(Operator):
    """Keep rows where every predicate holds and every constrained column has its value."""

    order_sensitive = False

    def streaming_strategy(self, inputs: int) -> StreamingStrategy:
        return StreamingStrategy.PER_CHUNK

    def __init__(self, *predicates: pl.Expr, constraints: Mapping[str, Any] | None = None) -> None:
        import polars as pl

        not_exprs = [type(p).__name__ for p in predicates if not isinstance(p, pl.Expr)]
        if not_exprs:
            raise self._error(
                f"predicates must be polars expressions, got {', '.join(sorted(not_exprs))}"
            )
        self.predicates = predicates
        self.constraints = dict(constraints or {})
        self._serialized = tuple(self._serialize(p) for p in predicates)
        try:
            hash_value(self.constraints)
        except HashingError as exc:
            raise self._error(f"constraint values must be plain values: {exc}") from None

    def _serialize(self, predicate: pl.Expr) -> str:
        try:
            text = predicate.meta.serialize(format="json")
        except Exception as exc:  # polars raises several kinds for unserializable literals
            raise self._error(f"cannot serialize predicate {predicate}: {exc}") from None
        assert isinstance(text, str)  # with no file given, serialize returns the text
        if _PYTHON_CALLABLES & set(_keys(json.loads(text))):
            raise self._error(
                f"predicate {predicate} calls a Python function, which has no stable "
                "identity; use native expressions, or a function pod for such logic"
            )
        return text

    def parameters(self) -> dict[str, Any]:
        return {"predicates": self.predicates, "constraints": self.constraints}

    def __repr__(self) -> str:
        shown = [str(p) for p in self.predicates]
        return f"Filter({', '.join(shown)}, constraints={self.constraints!r})"

    def identity_structure(self) -> Any:
        return {"predicates": Unordered(self._serialized), "constraints": self.constraints}

    def spec_parameters(self) -> dict[str, Any] | None:
        # Polars' JSON form of each predicate, which ``from_spec_parameters`` reads back.
        try:
            constraints = json.loads(json.dumps(self.constraints, sort_keys=True))
        except (TypeError, ValueError):
            return None
        return {"predicates": list(self._serialized), "constraints": constraints}

    @classmethod
    def from_spec_parameters(cls, parameters: dict[str, Any]) -> Filter:
        import polars as pl

        predicates = [
            pl.Expr.deserialize(io.StringIO(text), format="json")
            for text in parameters["predicates"]
        ]
        return cls(*predicates, constraints=parameters.get("constraints"))

    def _terms(self) -> list[pl.Expr]:
        """Every predicate, then every constraint as an equality test (``None`` meets nulls)."""
        import polars as pl

        equal = [pl.col(c).eq_missing(pl.lit(v)) for c, v in self.constraints.items()]
        return [*self.predicates, *equal]

    def _plan(self, inputs: Sequence[Stream], schemas: Sequence[StreamSchema]) -> StreamSchema:
        import polars as pl

        (schema,) = schemas
        columns = schema.user_columns()
        unknown = {c for c in self.constraints if c not in columns}
        for predicate in self.predicates:
            unknown |= {c for c in predicate.meta.root_names() if c not in columns}
        if unknown:
            raise self._error(
                f"unknown column(s) {format_names(unknown)}; "
                f"tag and packet columns are {format_names(columns)}"
            )
        terms = self._terms()
        if not terms:
            return schema
        # Type-check on an empty frame of the input's schema: errors surface now, not later.
        empty = pl.from_arrow(schema.tags.merge(schema.packets).to_arrow().empty_table())
        assert isinstance(empty, pl.DataFrame)
        named = [term.alias(str(i)) for i, term in enumerate(terms)]
        try:
            dtypes = empty.lazy().select(named).collect_schema().dtypes()
        except pl.exceptions.PolarsError as exc:
            raise self._error(f"predicates do not apply to this input: {exc}") from None
        wrong = sorted(f"{t} ({d})" for t, d in zip(terms, dtypes, strict=True) if d != pl.Boolean)
        if wrong:
            raise self._error(f"predicates must give booleans: {', '.join(wrong)}")
        return schema

    def _compute(
        self, inputs: Sequence[Stream], tables: Sequence[pa.Table], out: StreamSchema
    ) -> pa.Table:
        (table,) = tables
        terms = self._terms()
        if not terms:
            return table
        return take_rows(table, self._kept(table, out, terms))

    def preview(
        self, *inputs: Stream, unknown: Sequence[np.ndarray | None] | None = None
    ) -> TableStream:
        """As ``process``, but a row whose packet values are not known yet (``unknown``) is
        kept unless a term on tags alone drops it: only its values could decide."""
        mask = unknown[0] if unknown else None
        if mask is None or not mask.any():
            return self.process(*inputs)
        out = self.plan(inputs)
        (stream,) = inputs
        table = stream.as_table(system_tags=True, source_info=True)
        terms = self._terms()
        tags = set(out.tags)
        on_tags = [t for t in terms if _reads_only(t, tags)]
        keep = np.zeros(table.num_rows, dtype=bool)
        keep[self._kept(table, out, terms)] = True
        keep[np.flatnonzero(mask)[self._kept(table.filter(pa.array(mask)), out, on_tags)]] = True
        return self._finish(take_rows(table, np.flatnonzero(keep)), out)

    def _kept(self, table: pa.Table, out: StreamSchema, terms: list[pl.Expr]) -> np.ndarray:
        """The rows of ``table`` where every term holds (all rows without terms)."""
        import polars as pl

        if not terms:
            return np.arange(table.num_rows)
        frame = pl.from_arrow(table.select(list(out.user_columns())))
        assert isinstance(frame, pl.DataFrame)
        # Filtering a row index (not building a mask) lets scalar predicates broadcast.
        try:
            rows = frame.with_row_index(ROW_INDEX).filter(*terms).get_column(ROW_INDEX)
        except pl.exceptions.PolarsError as exc:  # e.g. a zoned datetime against a naive one
            raise self._error(f"predicates failed on the data: {exc}") from None
        return rows.to_numpy().astype(np.int64)


def _reads_only(term: pl.Expr, columns: set[str]) -> bool:
    """Whether ``term`` reads no column outside ``columns``. A selection that names no column
    (``pl.col([...])``, ``pl.all()``, a regex or a dtype selector) counts as reading every
    column: ``root_names`` lists none of the columns it takes."""
    pending = [term]
    while pending:
        expr = pending.pop()
        if expr.meta.has_multiple_outputs() or expr.meta.is_regex_projection():
            return False
        pending.extend(expr.meta.pop())
    return set(term.meta.root_names()) <= columns


def _keys(node: Any) -> Iterator[str]:
    """Every mapping key in a parsed JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)
