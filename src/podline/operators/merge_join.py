"""``MergeJoin``: a binary, commutative join that collects a packet column found on both sides.

It joins like ``Join`` (shared tag columns, canonical order, system-tag renaming, canonical
row order). A packet column present in both inputs must have the same type up to ``| None``;
it becomes ``list[T]`` holding both values, sorted by value (nulls last; ties broken by the
source-info token), and its source-info column becomes the list of the two tokens in the same
order. ``T`` is nullable when either side's column is. Packet columns found on one side only
stay scalar.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from podline.columns import source_info_column
from podline.operators.base import Operator, StreamSchema, describe_input, merge_shared_types
from podline.operators.join import check_zones, finish_join, join_rows, plan_join, swap_where
from podline.operators.keys import key_form, row_less
from podline.schema import PodType, Schema, args_of, arrow_type, is_optional, list_of
from podline.streams import Stream

__all__ = ["MergeJoin"]


class MergeJoin(Operator):
    """Join two streams, merging packet columns found on both into sorted two-item lists."""

    arity = 2
    commutative = True
    order_sensitive = False  # (streams only as a barrier: the default strategy)

    def _plan(self, inputs: Sequence[Stream], schemas: Sequence[StreamSchema]) -> StreamSchema:
        plan = plan_join(self.label, inputs, schemas)
        # Checks that shared packet columns agree up to ``| None``.
        types = merge_shared_types(
            self.label,
            "packet",
            [(describe_input(i, s), schemas[i].packets) for i, s in enumerate(inputs)],
        )
        packets: dict[str, PodType] = {}
        for name in sorted(types):
            sides = [s.packets[name] for s in schemas if name in s.packets]
            if len(sides) == 1:
                packets[name] = sides[0]
                continue
            item = types[name]
            packets[name] = list_of(item | None if any(map(is_optional, sides)) else item)
        return StreamSchema(plan.tags, Schema(packets), plan.system_tags)

    def _compute(
        self, inputs: Sequence[Stream], tables: Sequence[pa.Table], out: StreamSchema
    ) -> pa.Table:
        plan = plan_join(self.label, inputs, [StreamSchema.of(s) for s in inputs])
        check_zones(self, tables, list(plan.tags))
        (left, right), in_order = join_rows(plan, tables)
        columns: dict[str, pa.ChunkedArray | pa.Array] = {}
        for name in out.table_columns():
            if name in columns:  # the source info of a merged column, already set
                continue
            if name in left.column_names and name in right.column_names:
                values, tokens = _merge(name, left, right, args_of(out.packets[name])[0])
                columns[name], columns[source_info_column(name)] = values, tokens
            else:
                columns[name] = (left if name in left.column_names else right).column(name)
        return finish_join(plan, columns, in_order)


def _merge(name: str, left: pa.Table, right: pa.Table, item: PodType) -> tuple[pa.Array, pa.Array]:
    """Both sides' values of ``name`` as sorted two-item lists, with their tokens alongside."""
    info = source_info_column(name)
    a, b = left.column(name), right.column(name)
    if a.type != b.type:  # same podline type, different physical types: use the canonical one
        target = arrow_type(item)
        a, b = a.cast(target), b.cast(target)
    ta, tb = left.column(info), right.column(info)
    swap = row_less(
        [key_form(b, name), key_form(tb, info)], [key_form(a, name), key_form(ta, info)]
    )
    first, second = swap_where(swap, a, b)
    first_token, second_token = swap_where(swap, ta, tb)
    values = _pairs(first, second, pa.field("item", a.type, nullable=is_optional(item)))
    tokens = _pairs(first_token, second_token, pa.field("item", ta.type))
    return values, tokens


def _pairs(
    first: pa.Array | pa.ChunkedArray, second: pa.Array | pa.ChunkedArray, item: pa.Field
) -> pa.LargeListArray:
    """Row ``i`` becomes the list ``[first[i], second[i]]``."""
    n = len(first)
    both = pa.concat_arrays([_contiguous(first), _contiguous(second)])
    interleaved = both.take(pa.array(np.column_stack([np.arange(n), np.arange(n) + n]).ravel()))
    offsets = pa.array(np.arange(0, 2 * n + 1, 2), pa.int64())
    return pa.LargeListArray.from_arrays(offsets, interleaved, type=pa.large_list(item))


def _contiguous(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
