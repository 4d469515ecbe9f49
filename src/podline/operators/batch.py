"""``Batch``: group consecutive rows into one row of lists.

``Batch(batch_size=n)`` takes the rows in stream order, ``n`` at a time; ``batch_size=0``
makes one batch of every row. A last batch with fewer than ``n`` rows is kept, or dropped
with ``drop_partial=True``. An empty stream gives no batch (an empty, typed output).

Every column becomes a list column of its type: tags and packets (``T`` -> ``list[T]``),
system tags (names unchanged, values ``list[str]``) and source info (a list of tokens). The
lists are built on the input's Arrow buffers with offsets, so no value is copied, and the
result is an ordinary table: it materializes, hashes and stores like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from podline.operators.base import Operator, StreamingStrategy, StreamSchema
from podline.schema import Schema, list_of
from podline.streams import Stream

__all__ = ["Batch"]


class Batch(Operator):
    """Group rows into batches of ``batch_size`` (0: one batch of everything)."""

    def __init__(self, batch_size: int = 0, drop_partial: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise self._error(f"batch_size must be an integer >= 0, got {batch_size!r}")
        self.batch_size = batch_size
        self.drop_partial = bool(drop_partial)

    def parameters(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "drop_partial": self.drop_partial}

    def streaming_strategy(self, inputs: int) -> StreamingStrategy:
        """Fixed-size batches as rows arrive; one batch of everything waits for it all."""
        return StreamingStrategy.FIXED_BATCH if self.batch_size else StreamingStrategy.BARRIER

    def _plan(self, inputs: Sequence[Stream], schemas: Sequence[StreamSchema]) -> StreamSchema:
        (schema,) = schemas
        return StreamSchema(
            *(
                Schema({name: list_of(tp) for name, tp in part.items()})
                for part in (schema.tags, schema.packets, schema.system_tags)
            )
        )

    def _compute(
        self, inputs: Sequence[Stream], tables: Sequence[pa.Table], out: StreamSchema
    ) -> pa.Table:
        (table,) = tables
        offsets = pa.array(self._offsets(table.num_rows), pa.int64())
        columns = [
            pa.LargeListArray.from_arrays(
                offsets, column.combine_chunks(), type=pa.large_list(field.with_name("item"))
            )
            for field, column in zip(table.schema, table.columns, strict=True)
        ]
        return pa.Table.from_arrays(columns, names=table.column_names)

    def _offsets(self, rows: int) -> np.ndarray:
        """Where each batch starts, then where the last one ends."""
        size = self.batch_size or rows
        if rows == 0:
            return np.zeros(1, dtype=np.int64)
        ends = np.arange(size, rows + size, size).clip(max=rows)
        if self.drop_partial and rows % size:
            ends = ends[:-1]
        return np.concatenate([[0], ends])
