"""``SemiJoin``: keep the left rows whose tags match a row of the right (not commutative).

Rows match on the tag columns the two inputs share, with the same rules as ``Join`` (types
equal up to ``| None``; nulls never match). With no shared tag column every left row matches
any right row, so the left rows are kept when the right is non-empty and dropped when it is
empty: exactly the left part of a Cartesian product. The output schema is exactly the left
schema, system tags and source info included, and the kept rows stay in their left order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from podline.operators.base import (
    ROW_INDEX,
    Operator,
    StreamingStrategy,
    StreamSchema,
    describe_input,
    merge_shared_types,
    take_rows,
)
from podline.operators.join import check_zones
from podline.operators.keys import key_frame
from podline.streams import Stream

__all__ = ["SemiJoin"]


class SemiJoin(Operator):
    """Filter the left stream by the tags present in the right stream."""

    arity = 2
    order_sensitive = False

    def streaming_strategy(self, inputs: int) -> StreamingStrategy:
        return StreamingStrategy.BUILD_PROBE

    def _plan(self, inputs: Sequence[Stream], schemas: Sequence[StreamSchema]) -> StreamSchema:
        left, right = schemas
        shared = [t for t in left.tags if t in right.tags]
        merge_shared_types(
            self.label,
            "tag",
            [(describe_input(i, s), schemas[i].tags.select(shared)) for i, s in enumerate(inputs)],
        )
        return left

    def _compute(
        self, inputs: Sequence[Stream], tables: Sequence[pa.Table], out: StreamSchema
    ) -> pa.Table:
        left, right = tables
        right_tags = StreamSchema.of(inputs[1]).tags
        shared = [t for t in out.tags if t in right_tags]
        if not shared:
            return left if right.num_rows else left.slice(0, 0)
        check_zones(self, tables, shared)
        left_keys = key_frame(left, shared, row_index=ROW_INDEX)
        matched = left_keys.join(key_frame(right, shared), on=shared, how="semi")
        return take_rows(left, np.sort(matched.get_column(ROW_INDEX).to_numpy()))
