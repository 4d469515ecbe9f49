"""The operator base: identity from parameters, eager validation, predicted output schemas.

An operator reshapes streams without inventing packet values. Every operator

* is identified by its parameters (``identity_structure``) under its class name; its inputs
  enter the identity of its result through ``argument_identity``: an ordered tuple, or an
  ``Unordered`` multiset for commutative operators;
* predicts its output schema, system tags included, from its inputs' schemas alone
  (``output_schema``), and validates its inputs the same way, so ``op(*streams)`` raises at
  application time and computes nothing;
* computes with Arrow and Polars kernels (``process``). The computed table is conformed to
  the prediction (column order and nullability) and checked against it, so a predicted schema
  and a computed one never disagree.

Operators carry tag, packet, system-tag and source-info columns. Meta columns are not carried:
they are bookkeeping of the node that wrote them.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import is_system_tag, source_info_column
from podline.errors import OperatorError, SchemaError, format_names
from podline.hashing import IdentityMixin, Unordered
from podline.schema import PodType, Schema, is_optional, strip_optional, type_name
from podline.streams import ProducedStream, Stream, TableStream, invoke

__all__ = [
    "ROW_INDEX",
    "Operator",
    "StreamSchema",
    "StreamingStrategy",
    "describe_input",
    "merge_shared_types",
    "take_rows",
    "unknown_columns",
]

_NONE_TYPE = type(None)

#: A row-index column for kernels; the reserved prefix keeps it clear of user columns.
ROW_INDEX = "__row"

#: Below this many rows, gathering columns on several threads costs more than it saves.
_PARALLEL_TAKE_ROWS = 1 << 16


@dataclass(frozen=True, slots=True)
class StreamSchema:
    """The full schema of a stream: user tags, packets and system tags, each in column order."""

    tags: Schema
    packets: Schema
    system_tags: Schema

    @classmethod
    def of(cls, stream: Stream) -> StreamSchema:
        """The schema ``stream`` declares (nothing is computed)."""
        tags, packets = stream.output_schema(system_tags=True)
        system = [name for name in tags if is_system_tag(name)]
        return cls(tags.drop(system), packets, tags.select(system))

    def user_columns(self) -> tuple[str, ...]:
        """Tag then packet column names."""
        return (*self.tags, *self.packets)

    def table_columns(self) -> list[str]:
        """Every column of the stream's full table, in table order."""
        info = [source_info_column(p) for p in self.packets]
        return [*self.tags, *self.packets, *self.system_tags, *info]

    def schemas(self, *, system_tags: bool) -> tuple[Schema, Schema]:
        """(tag schema, packet schema) as ``Stream.output_schema`` reports them."""
        tags = self.tags.merge(self.system_tags) if system_tags else self.tags
        return tags, self.packets


def merge_shared_types(
    operator: str, kind: str, inputs: Sequence[tuple[str, Schema]]
) -> dict[str, PodType]:
    """The type of every column across ``inputs`` (``(description, schema)`` pairs).

    A column in several inputs must have one type up to ``| None``; it is nullable in the
    result only if it is nullable in every input that has it, since matching rows in a join
    never hold nulls there. Conflicts are reported together, columns and types sorted.
    """
    seen: dict[str, list[tuple[str, PodType]]] = {}
    for description, schema in inputs:
        for name, tp in schema.items():
            seen.setdefault(name, []).append((description, tp))
    conflicts = []
    merged: dict[str, PodType] = {}
    for name in sorted(seen):
        typed = seen[name]
        bases = {type_name(strip_optional(tp)) for _, tp in typed}
        if len(bases) > 1:
            detail = "; ".join(
                sorted(f"{type_name(tp)} in {description}" for description, tp in typed)
            )
            conflicts.append(f"{name!r} ({detail})")
            continue
        nullable = all(is_optional(tp) for _, tp in typed)
        base = strip_optional(typed[0][1])
        merged[name] = base | None if nullable and base is not _NONE_TYPE else base
    if conflicts:
        raise OperatorError(
            operator, f"{kind} column(s) with conflicting types: {', '.join(conflicts)}"
        )
    return merged


class StreamingStrategy(enum.StrEnum):
    """How an operator can run on inputs that arrive in chunks (the async orchestrator)."""

    #: Each input chunk is processed on its own as it arrives (one input).
    PER_CHUNK = "per_chunk"
    #: Input 1 is collected fully, then each chunk of input 0 is probed against it.
    BUILD_PROBE = "build_probe"
    #: Two inputs; a chunk arriving on one side is joined with everything the other side
    #: has delivered so far, then kept. Row order differs from a sync run's. Only valid for
    #: operators whose output over a union of input rows is the union of their outputs over
    #: the parts.
    SYMMETRIC_JOIN = "symmetric_join"
    #: Fixed-size batches, each emitted as soon as it is full.
    FIXED_BATCH = "fixed_batch"
    #: Every input is collected, then the operator runs once.
    BARRIER = "barrier"


class Operator(IdentityMixin):
    """Base of every operator; subclasses implement ``_plan`` and ``_compute``.

    ``arity`` is the exact number of inputs, or ``None`` for one or more. ``commutative``
    operators give the same identity and the same rows for any order of their inputs.
    ``order_sensitive`` operators may output another set of rows when their input rows come
    in another order; ``streaming_strategy`` says how the operator can stream.
    """

    arity: ClassVar[int | None] = 1
    commutative: ClassVar[bool] = False
    order_sensitive: ClassVar[bool] = True

    def streaming_strategy(self, inputs: int) -> StreamingStrategy:
        """How this operator can run over ``inputs`` inputs arriving in chunks (by default it
        waits for all of them)."""
        return StreamingStrategy.BARRIER

    # ------------------------------------------------------------------ identity
    @property
    def label(self) -> str:
        """The operator's class name (labels never enter an identity)."""
        return type(self).__name__

    def parameters(self) -> dict[str, Any]:
        """The parameters that define this operator (its identity, and its repr)."""
        return {}

    def identity_structure(self) -> Any:
        return self.parameters()

    def spec_parameters(self) -> dict[str, Any] | None:
        """The parameters as JSON values, for a saved pipeline (``from_spec_parameters``
        builds the operator again from them); None when some parameter has no JSON form."""
        try:
            return dict(json.loads(json.dumps(self.parameters(), sort_keys=True)))
        except (TypeError, ValueError):
            return None

    @classmethod
    def from_spec_parameters(cls, parameters: dict[str, Any]) -> Operator:
        """The operator ``spec_parameters`` describes."""
        return cls(**parameters)

    def argument_identity(self, inputs: Sequence[Stream]) -> Any:
        """How the inputs enter the result's identity: a multiset when commutative."""
        return Unordered(inputs) if self.commutative else tuple(inputs)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.parameters().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------------ application
    def __call__(self, *streams: Stream, label: str | None = None) -> ProducedStream:
        """Apply the operator: validate now, compute when the result is first read."""
        self.plan(streams)
        return invoke(ProducedStream(self, streams, label=label))

    def output_schema(self, *inputs: Stream, system_tags: bool = False) -> tuple[Schema, Schema]:
        """The (tag, packet) schemas of the result for these inputs, computing nothing."""
        return self.plan(inputs).schemas(system_tags=system_tags)

    def plan(self, inputs: Sequence[Stream]) -> StreamSchema:
        """Validate ``inputs`` and predict the full output schema; raises ``OperatorError``."""
        self._check_inputs(inputs)
        return self._plan(inputs, [StreamSchema.of(s) for s in inputs])

    def process(self, *inputs: Stream) -> TableStream:
        """Compute the output rows."""
        out = self.plan(inputs)
        tables = [s.as_table(system_tags=True, source_info=True) for s in inputs]
        return self._finish(self._compute(inputs, tables, out), out)

    def preview(
        self, *inputs: Stream, unknown: Sequence[np.ndarray | None] | None = None
    ) -> TableStream:
        """The rows ``process`` would give when the packet values of some input rows are not
        known yet (``unknown``: per input, a mask of such rows, or None): an operator whose
        decisions read packet values keeps those rows (``pipeline.plan()`` counts them as an
        upper bound). Operators that decide by tags alone compute as ``process`` does."""
        return self.process(*inputs)

    # ------------------------------------------------------------------ subclass hooks
    def _plan(self, inputs: Sequence[Stream], schemas: Sequence[StreamSchema]) -> StreamSchema:
        raise NotImplementedError(f"{type(self).__name__} must implement _plan()")

    def _compute(
        self, inputs: Sequence[Stream], tables: Sequence[pa.Table], out: StreamSchema
    ) -> pa.Table:
        """The output table: at least ``out``'s columns, with the predicted logical types."""
        raise NotImplementedError(f"{type(self).__name__} must implement _compute()")

    # ------------------------------------------------------------------ helpers
    def _error(self, message: str) -> OperatorError:
        return OperatorError(self.label, message)

    def _check_inputs(self, inputs: Sequence[Stream]) -> None:
        not_streams = [
            f"{i} ({type(s).__name__})" for i, s in enumerate(inputs) if not isinstance(s, Stream)
        ]
        if not_streams:
            raise self._error(f"input(s) {', '.join(not_streams)} are not streams")
        if self.arity is None and not inputs:
            raise self._error("needs at least one input stream")
        if self.arity is not None and len(inputs) != self.arity:
            raise self._error(f"takes {self.arity} input stream(s), got {len(inputs)}")

    def _finish(self, table: pa.Table, out: StreamSchema) -> TableStream:
        """Conform the computed table to the prediction and wrap it as a stream."""
        table = table.select(out.table_columns())
        predicted = {**out.tags, **out.packets, **out.system_tags}
        fields = [
            _with_nullability(f, predicted[f.name]) if f.name in predicted else f
            for f in table.schema
        ]
        table = pa.Table.from_arrays(table.columns, schema=pa.schema(fields))
        # The predicted types are authoritative where Arrow cannot tell them (dataclasses).
        types = {**out.tags, **out.packets}
        stream = TableStream(table, tuple(out.tags), label=self.label, types=types)
        if stream.output_schema(system_tags=True) != out.schemas(system_tags=True):
            # A bug in the operator, never a user error: say so plainly.
            raise SchemaError(
                f"{self.label}: computed schema {stream.output_schema(system_tags=True)} "
                f"differs from the predicted {out.schemas(system_tags=True)}; this is a bug"
            )
        return stream


def take_rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """The rows of ``table`` at ``rows``, in that order; every column keeps its exact type.

    Gathering dominates a join's cost, so: a selection of every row in its own order is no
    work; a column holding one value throughout (as a source's source-id system tag does) is
    repeated rather than gathered; the rest is gathered in row ranges on several threads
    (Arrow releases the GIL), giving chunked columns.
    """
    if len(rows) == table.num_rows and np.array_equal(rows, np.arange(len(rows))):
        return table
    constants = {name: _constant(table.column(name)) for name in table.column_names}
    varying = table.select([name for name, value in constants.items() if value is None])
    gathered = _gather(varying, rows)
    columns = [
        gathered.column(name) if value is None else pa.repeat(value, len(rows))
        for name, value in constants.items()
    ]
    return pa.Table.from_arrays(columns, schema=table.schema)


def _constant(column: pa.ChunkedArray) -> pa.Scalar | None:
    """The value of a column that holds the same non-null value on every row, else ``None``."""
    t = column.type
    # Floats are left out: -0.0 equals 0.0, and repeating one would change the other's bits.
    plain = not (pa.types.is_nested(t) or pa.types.is_dictionary(t) or pa.types.is_floating(t))
    if not len(column) or column.null_count or not plain:
        return None
    first = column[0]
    return first if pc.all(pc.equal(column, first)).as_py() else None


def _gather(table: pa.Table, rows: np.ndarray) -> pa.Table:
    workers = pa.cpu_count()
    if len(rows) < _PARALLEL_TAKE_ROWS or workers < 2 or not table.num_columns:
        return table.take(pa.array(rows))
    # A few ranges per thread even out the uneven cost of string columns.
    ranges = np.array_split(rows, 2 * workers)
    with ThreadPoolExecutor(workers) as pool:
        return pa.concat_tables(pool.map(lambda part: table.take(pa.array(part)), ranges))


def _with_nullability(field: pa.Field, tp: PodType) -> pa.Field:
    """``field`` nullable exactly when the predicted type ``tp`` is ``T | None``."""
    return field.with_nullable(is_optional(tp) or tp is _NONE_TYPE)


def describe_input(index: int, stream: Stream) -> str:
    """How error messages name an input: its position and label."""
    return f"input {index} ({stream.label!r})"


def unknown_columns(
    operator: str, kind: str, names: Iterable[str], schema: StreamSchema
) -> OperatorError:
    """The error for ``names`` that are not ``kind`` columns, saying what they are if known."""
    names = sorted(set(names))
    available, other_kind, others = (
        (schema.tags, "packet", schema.packets)
        if kind == "tag"
        else (schema.packets, "tag", schema.tags)
    )
    misplaced = [n for n in names if n in others]
    hint = f" ({format_names(misplaced)}: {other_kind} column(s))" if misplaced else ""
    return OperatorError(
        operator,
        f"unknown {kind} column(s) {format_names(names)}{hint}; "
        f"{kind} columns are {format_names(available) or 'none'}",
    )
