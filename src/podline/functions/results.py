"""What running a function pod over a stream gives: per input row, a ``RowStatus``, and the
``PodResult`` that holds them with the output stream, the errors and captures of failed calls,
and why stored results were replaced; ``PacketLogger``, what receives each call's capture.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa

from podline.datagrams import Packet, Tag
from podline.errors import FunctionCallError
from podline.executors import CallCapture
from podline.streams import TableStream

__all__ = ["STATUSES", "LoggerFactory", "PacketLogger", "PodResult", "RowStatus"]


class RowStatus(enum.StrEnum):
    """What happened to one input row."""

    COMPUTED = "computed"
    CACHED = "cached"
    SKIPPED = "skipped"
    FAILED = "failed"


class PacketLogger(Protocol):
    """Receives the capture of one computed call (observers provide these)."""

    def record(self, capture: CallCapture) -> None:
        """Called once, after the call finished, with everything it printed and logged."""
        ...


LoggerFactory = Callable[[Tag, Packet], PacketLogger]


#: The statuses in declaration order: ``PodResult.codes`` holds indexes into it.
STATUSES = tuple(RowStatus)


@dataclass
class PodResult:
    """The outcome of running a pod over a stream.

    ``codes`` holds, per input row, the index of its ``RowStatus`` in declaration order
    (computed, cached, skipped, failed). Rows with the same argument packet share one call: the
    first is computed, the others are cached, and if the call failed they all failed (its
    error is reported once, at the first row).
    """

    stream: TableStream
    codes: np.ndarray
    errors: dict[int, FunctionCallError] = field(default_factory=dict)
    captures: dict[int, CallCapture] = field(default_factory=dict)
    #: Per input row: whether its call ran in this run (False for results found in the store
    #: or shared with an earlier row), whatever its status.
    computed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: Per input row: the hash of its argument packet, i.e. its record id in the memo.
    argument_hashes: pa.Array = field(default_factory=lambda: pa.array([], pa.large_string()))
    #: With ``keep_captures``: per input row, its call's start and end (seconds since the
    #: epoch; NaN where no call ran). Captures are then kept only for calls that printed,
    #: logged or failed: most calls tell nothing else, and keeping an object per call costs
    #: more than the call (see ``PacketOutcomes.capture``).
    call_times: np.ndarray | None = None
    #: Per input row whose call replaced a stored result: why ("recompute requested",
    #: "output file missing: ...", "output file changed: ...").
    reasons: dict[int, str] = field(default_factory=dict)

    @property
    def status(self) -> list[RowStatus]:
        """Per input row, what happened to it."""
        return [STATUSES[code] for code in self.codes.tolist()]

    def count(self, status: RowStatus) -> int:
        """How many input rows ended with ``status``."""
        return int(np.count_nonzero(self.codes == STATUSES.index(status)))
