"""What a function node tells observers about its input packets, a batch at a time.

A per-packet hook needs a ``Tag`` and a ``Packet`` object for every row, which costs more than
many functions do. So a function node reports in batches: ``on_packets_start`` with the rows a
batch of calls is about to compute, ``on_packets_end`` with a batch of rows that are done. A
batch holds Arrow columns and builds per-row objects only when asked (once, however many
observers ask). ``podline.pipeline.Observer`` turns the batch hooks into the per-packet hooks,
so an observer written packet by packet keeps working; an observer that wants speed overrides
the batch hooks and reads columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from podline.datagrams import Packet, Tag
from podline.executors import CallCapture
from podline.functions import RowStatus
from podline.streams import TableStream

__all__ = ["PacketBatch", "PacketOutcomes"]


@dataclass(frozen=True, eq=False)
class PacketBatch:
    """Input packets of one function node: the rows ``indices`` of ``inputs`` (all of them
    when ``indices`` is None), with their tags, system tags and packet columns."""

    inputs: TableStream
    indices: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.inputs) if self.indices is None else len(self.indices)

    def rows(self) -> list[tuple[Tag, Packet]]:
        """One ``(tag, packet)`` per row (built on first use, then shared by every batch of
        the same inputs, so a packet's start and end hooks get the same objects)."""
        rows = list(self.inputs.iter_packets())
        return rows if self.indices is None else [rows[i] for i in self.indices.tolist()]

    def table(self) -> pa.Table:
        """The rows as a table: tags, system tags, packets and their source info."""
        table = self.inputs.as_table(system_tags=True, source_info=True)
        return table if self.indices is None else table.take(pa.array(self.indices, pa.int64()))

    def tags(self) -> pa.Table:
        """The tag and system-tag columns of the rows."""
        names, _ = self.inputs.keys(system_tags=True)
        table = self.inputs.as_table(system_tags=True).select(list(names))
        return table if self.indices is None else table.take(pa.array(self.indices, pa.int64()))


_STATUSES = tuple(RowStatus)


@dataclass(frozen=True, eq=False)
class PacketOutcomes(PacketBatch):
    """Input packets that are done, with what happened to each.

    Row ``i`` ended with ``statuses[i]``; ``computed[i]`` says its call ran in this run (the
    others are cached: served from this pipeline's records or the shared memo);
    ``started[i]`` says an earlier ``on_packets_start`` already announced it. ``errors`` is
    keyed by row: the failure of a failed row. ``call_times[i]`` holds the start and end of
    row ``i``'s call (seconds since the epoch; NaN where no call ran), and ``captures`` what
    a call printed, logged or raised, for the calls that did (most do none of it, and an
    object per quiet call would cost more than the call): ``capture(i)`` gives every
    computed row's capture. ``outputs`` holds the output rows of the rows that produced one,
    in input order.
    """

    codes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    computed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    started: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    errors: Mapping[int, BaseException] = field(default_factory=dict)
    captures: Mapping[int, CallCapture] = field(default_factory=dict)
    call_times: np.ndarray | None = None
    outputs: TableStream | None = None
    #: By row: why a computed row's call replaced a stored result ("recompute requested",
    #: "output file missing: ...", "output file changed: ..."); other rows are absent.
    reasons: Mapping[int, str] = field(default_factory=dict)

    def capture(self, row: int) -> CallCapture | None:
        """What row ``row``'s call printed, logged and raised, and its times (None: no call
        ran for it in this run)."""
        found = self.captures.get(row)
        if found is not None or self.call_times is None:
            return found
        start, end = self.call_times[row].tolist()
        if math.isnan(start):  # no call ran
            return None
        quiet = CallCapture()
        quiet.start, quiet.end = start, end
        return quiet

    @property
    def statuses(self) -> list[RowStatus]:
        """Per row, what happened to it."""
        return [_STATUSES[code] for code in self.codes.tolist()]

    def count(self, status: RowStatus) -> int:
        """How many rows ended with ``status``."""
        return int(np.count_nonzero(self.codes == _STATUSES.index(status)))

    def output_packets(self) -> list[Packet | None]:
        """Per row, its output packet (None when it was skipped or failed)."""
        produced = self.codes <= _STATUSES.index(RowStatus.CACHED)  # computed or cached
        packets: list[Packet | None] = [None] * len(self)
        if self.outputs is not None:
            outputs = (packet for _, packet in self.outputs.iter_packets())
            for row in np.flatnonzero(produced).tolist():
                packets[row] = next(outputs)
        return packets
