"""``Join``: the N-ary inner join on shared tag columns, and the machinery joins share.

Semantics (see ``docs/operators.md``):

* Inputs are put in *canonical order*: sorted by the string of their pipeline hash (stable).
  An input's canonical position is its index in that order.
* Rows match when they agree on every tag column their inputs share (nulls never match); two
  inputs that share no tag column combine as a Cartesian product. The output tags are the
  union of the inputs' tags.
* Every input's system-tag columns are renamed with ``columns.extend_lineage`` using that
  input's pipeline hash and canonical position, so every lineage survives, and the names do
  not depend on the order the inputs were given in.
* Inputs with equal pipeline hashes are interchangeable: their positions are decided by
  argument order alone. So that the result does not depend on it either, each row's system
  tags of such inputs are re-sorted among them, a slot (one input's system tags) moving as a
  whole and ordered by its values.
* The output has tag columns in name order, then packet columns in name order. Its rows follow
  the input at canonical position 0 (in its own order), each with its matches in the next
  input's order, and so on: identical for any order of the arguments, with no sort. Only when
  inputs share a pipeline hash, so that argument order would pick the first one, are rows
  sorted into a canonical order: by tags, then system tags, then packets and source info
  (each by its key form, see ``keys``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import extend_lineage, parse_system_tag
from podline.errors import OperatorError, format_names
from podline.operators.base import (
    ROW_INDEX,
    Operator,
    StreamingStrategy,
    StreamSchema,
    describe_input,
    merge_shared_types,
    take_rows,
)
from podline.operators.keys import (
    canonical_order,
    is_increasing,
    key_form,
    key_frame,
    row_less,
    zone_conflicts,
)
from podline.schema import PodType, Schema
from podline.streams import Stream

__all__ = [
    "Join",
    "JoinPlan",
    "check_zones",
    "finish_join",
    "join_rows",
    "plan_join",
    "swap_where",
]


@dataclass(frozen=True, slots=True)
class JoinPlan:
    """What a join decides from its inputs' schemas alone.

    ``order[p]`` is the argument index of the input at canonical position ``p``; the other
    per-input fields are indexed by canonical position.
    """

    order: tuple[int, ...]
    tags: Schema
    input_tags: tuple[tuple[str, ...], ...]
    renames: tuple[dict[str, str], ...]
    system_tags: Schema
    #: Groups of interchangeable slots: each slot lists one input's renamed system tags.
    exchangeable: tuple[tuple[tuple[str, ...], ...], ...]
    #: Whether every input has its own pipeline hash, so canonical order alone (not the
    #: argument order) decides which input comes first.
    distinct: bool


def plan_join(operator: str, inputs: Sequence[Stream], schemas: Sequence[StreamSchema]) -> JoinPlan:
    """Canonical order, merged tags and renamed system tags of a join of ``inputs``."""
    hashes = [s.pipeline_hash() for s in inputs]
    order = tuple(sorted(range(len(inputs)), key=lambda i: str(hashes[i])))
    described = [(describe_input(i, inputs[i]), schemas[i]) for i in range(len(inputs))]
    tag_types = merge_shared_types(operator, "tag", [(d, s.tags) for d, s in described])
    clashes = {t for _, s in described for t in s.packets} & tag_types.keys()
    if clashes:
        raise OperatorError(
            operator,
            f"column(s) {format_names(clashes)} are tag columns in one input and packet "
            "columns in another; rename them (MapTags / MapPackets) first",
        )
    renames = []
    system: dict[str, PodType] = {}
    slots: dict[tuple[str, Any], list[tuple[str, ...]]] = {}
    for position, index in enumerate(order):
        own = schemas[index].system_tags
        rename = {name: extend_lineage(name, hashes[index].hex, position) for name in own}
        renames.append(rename)
        system.update({rename[name]: tp for name, tp in own.items()})
        # Equal pipeline hashes and equal system tags make two inputs interchangeable.
        signature = (str(hashes[index]), own.identity_structure())
        slots.setdefault(signature, []).append(
            tuple(rename[n] for n in sorted(own, key=_pair_order))
        )
    exchangeable = tuple(tuple(group) for group in slots.values() if len(group) > 1 and group[0])
    return JoinPlan(
        order=order,
        tags=Schema({t: tag_types[t] for t in sorted(tag_types)}),
        input_tags=tuple(tuple(schemas[i].tags) for i in order),
        renames=tuple(renames),
        system_tags=Schema({name: system[name] for name in sorted(system)}),
        exchangeable=exchangeable,
        distinct=len({str(h) for h in hashes}) == len(hashes),
    )


def _pair_order(name: str) -> tuple[str, bool]:
    """Orders a slot's system tags as (source id, record id) pairs, lineage by lineage."""
    parsed = parse_system_tag(name)
    return parsed.lineage, parsed.kind != "source_id"


def check_zones(operator: Operator, tables: Sequence[pa.Table], tags: Sequence[str]) -> None:
    """An ``OperatorError`` if the ``tags`` the inputs match on hold timestamps of different
    time zones: no row would match, and a join silently giving none is worse than an error."""
    conflicts = zone_conflicts(tables, tags)
    if conflicts:
        raise OperatorError(
            operator.label,
            f"tag column(s) matched on hold timestamps in different time zones: "
            f"{', '.join(conflicts)}; a time in one never equals a time in another, so convert "
            "them to one zone first (polars: dt.convert_time_zone or dt.replace_time_zone)",
        )


def join_rows(plan: JoinPlan, tables: Sequence[pa.Table]) -> tuple[list[pa.Table], bool]:
    """The matching rows of every input, aligned: one table per canonical position.

    Each table has its system tags renamed, and a tag column only in the first table that
    has it (matching rows agree on it). The second value says whether the rows are already in
    their final order: always for distinct pipeline hashes (see the module docs); otherwise
    when the output tags are unique, since the rows are then sorted by tags alone.
    """
    parts = [tables[i].rename_columns(plan.renames[p]) for p, i in enumerate(plan.order)]
    frames = [
        key_frame(part, tags, row_index=f"{ROW_INDEX}{p}")
        for p, (part, tags) in enumerate(zip(parts, plan.input_tags, strict=True))
    ]
    out_tags = list(plan.tags)
    if plan.distinct:
        # Inputs joined in canonical position order, keeping the first input's row order (and
        # each later input's order among its matches): deterministic whatever order the
        # arguments came in, with no sort.
        joined = frames[0]
        for p, frame in enumerate(frames[1:], start=1):
            shared = [t for t in plan.input_tags[p] if t in joined.columns]
            if shared:
                joined = joined.join(frame, on=shared, maintain_order="left_right")
            else:
                joined = joined.join(frame, how="cross", maintain_order="left_right")
        in_order = True
    else:
        joined, in_order = _sorted_join(plan, frames, out_tags)
    aligned = []
    for p, (part, tags) in enumerate(zip(parts, plan.input_tags, strict=True)):
        earlier = {t for seen in plan.input_tags[:p] for t in seen}
        needed = part.drop_columns([t for t in tags if t in earlier])
        aligned.append(take_rows(needed, joined.get_column(f"{ROW_INDEX}{p}").to_numpy()))
    return aligned, in_order


def _sorted_join(plan: JoinPlan, frames: list[Any], out_tags: list[str]) -> tuple[Any, bool]:
    """The join when inputs share a pipeline hash: rows go in canonical (sorted) order."""
    # An input already sorted by every output tag, with no repeats, fixes the canonical order
    # for free: joined first, with its row order kept, it leaves nothing to sort.
    lead = next(
        (
            p
            for p, tags in enumerate(plan.input_tags)
            if out_tags and set(tags) == set(out_tags) and is_increasing(frames[p], out_tags)
        ),
        None,
    )
    first = lead if lead is not None else 0
    keep: Literal["left", "none"] = "left" if lead is not None else "none"
    joined = frames[first]
    for p, frame in enumerate(frames):
        if p == first:
            continue
        shared = [t for t in plan.input_tags[p] if t in joined.columns]
        if shared:
            joined = joined.join(frame, on=shared, maintain_order=keep)
        else:
            joined = joined.join(frame, how="cross", maintain_order=keep)
    if lead is None and out_tags:
        joined = joined.sort(out_tags, nulls_last=True)
    return joined, bool(out_tags) and is_increasing(joined, out_tags)


def finish_join(
    plan: JoinPlan, columns: dict[str, pa.ChunkedArray | pa.Array], in_order: bool
) -> pa.Table:
    """The joined table: slots re-sorted per row, rows in canonical order."""
    for group in plan.exchangeable:
        _sort_slots(columns, group)
    table = pa.table(columns)
    if in_order:
        return table
    names = [*plan.tags, *plan.system_tags]
    rest = [c for c in table.column_names if c not in names]
    return table.take(pa.array(canonical_order(table, [*names, *rest])))


def _sort_slots(
    columns: dict[str, pa.ChunkedArray | pa.Array], slots: Sequence[Sequence[str]]
) -> None:
    """Sort each row's slots by their values (odd-even transposition: a few vector passes)."""
    slots = list(slots)
    for round_ in range(len(slots)):
        for j in range(round_ % 2, len(slots) - 1, 2):
            low, high = slots[j], slots[j + 1]
            swap = row_less(
                [key_form(columns[c], c) for c in high], [key_form(columns[c], c) for c in low]
            )
            for a, b in zip(low, high, strict=True):
                columns[a], columns[b] = swap_where(swap, columns[a], columns[b])


def swap_where(
    swap: pa.Array, a: pa.ChunkedArray | pa.Array, b: pa.ChunkedArray | pa.Array
) -> tuple[pa.Array, pa.Array]:
    """``(a, b)`` with their values exchanged on the rows where ``swap`` is true."""
    b = b if b.type == a.type else b.cast(a.type)
    return pc.if_else(swap, b, a), pc.if_else(swap, a, b)


class Join(Operator):
    """The N-ary inner join on shared tag columns (commutative; see the module docs).

    Overlapping packet columns are an error naming them: rename or drop them first, or use
    ``MergeJoin`` to collect both values.
    """

    arity = None
    commutative = True
    order_sensitive = False

    def streaming_strategy(self, inputs: int) -> StreamingStrategy:
        """One input: row by row; two: a symmetric hash join; more: all at once."""
        if inputs == 1:
            return StreamingStrategy.PER_CHUNK
        if inputs == 2:
            return StreamingStrategy.SYMMETRIC_JOIN
        return StreamingStrategy.BARRIER

    def _plan(self, inputs: Sequence[Stream], schemas: Sequence[StreamSchema]) -> StreamSchema:
        plan = plan_join(self.label, inputs, schemas)
        owners: dict[str, list[str]] = {}
        packets: dict[str, PodType] = {}
        for index, schema in enumerate(schemas):
            for name, tp in schema.packets.items():
                owners.setdefault(name, []).append(describe_input(index, inputs[index]))
                packets[name] = tp
        overlap = {name: who for name, who in owners.items() if len(who) > 1}
        if overlap:
            detail = "; ".join(f"{n!r} in {', '.join(overlap[n])}" for n in sorted(overlap))
            raise self._error(
                f"packet column(s) {format_names(overlap)} appear in more than one input "
                f"({detail}); rename or drop them first, or use MergeJoin to collect both"
            )
        return StreamSchema(
            plan.tags, Schema({n: packets[n] for n in sorted(packets)}), plan.system_tags
        )

    def _compute(
        self, inputs: Sequence[Stream], tables: Sequence[pa.Table], out: StreamSchema
    ) -> pa.Table:
        plan = plan_join(self.label, inputs, [StreamSchema.of(s) for s in inputs])
        check_zones(self, tables, list(plan.tags))
        parts, in_order = join_rows(plan, tables)
        columns = {name: part.column(name) for part in parts for name in part.column_names}
        return finish_join(plan, {name: columns[name] for name in out.table_columns()}, in_order)
