"""Operators: structural transforms of streams that never invent packet values.

Each operator is built from its parameters and applied to streams:
``Join()(a, b)``, ``Batch(batch_size=10)(s)``. Application validates the inputs at once and
returns a lazy stream; every stream also offers the same operators as methods
(``a.join(b)``, ``s.batch(10)``). See ``docs/operators.md``.
"""

from podline.operators.base import Operator, StreamingStrategy, StreamSchema
from podline.operators.batch import Batch
from podline.operators.columns import (
    DropPacketColumns,
    DropTagColumns,
    MapPackets,
    MapTags,
    SelectPacketColumns,
    SelectTagColumns,
)
from podline.operators.filter import Filter
from podline.operators.join import Join
from podline.operators.merge_join import MergeJoin
from podline.operators.semi_join import SemiJoin

__all__ = [
    "Batch",
    "DropPacketColumns",
    "DropTagColumns",
    "Filter",
    "Join",
    "MapPackets",
    "MapTags",
    "MergeJoin",
    "Operator",
    "SelectPacketColumns",
    "SelectTagColumns",
    "SemiJoin",
    "StreamSchema",
    "StreamingStrategy",
]
