"""The durability window: how often finished calls are reported and committed.

A run commits finished results (with their provenance records and status rows) at least every
``commit_seconds`` (2 s by default), whatever the batch sizes: a crash, a SIGKILL or a power
loss then loses at most the calls that finished in the last window, and Ctrl-C loses none (an
interrupted batch commits what finished before the error propagates). Between commits,
finished calls are reported to observers every ``report_seconds``, so progress advances as
calls finish.

Both clocks are checked against the end times of finished calls, which executors record
anyway: a batch of fast calls that ends before the first deadline is reported and committed
once, as a whole, and costs nothing more.
"""

from __future__ import annotations

import time

from podline.errors import InputValidationError

__all__ = ["COMMIT_SECONDS", "REPORT_SECONDS", "CommitClock"]

#: Default durability window: finished work is committed at least this often (seconds).
COMMIT_SECONDS = 2.0
#: Default reporting window: finished calls reach observers at least this often (seconds).
REPORT_SECONDS = 0.5


class CommitClock:
    """When the next early report, and the next commit, are due (epoch seconds)."""

    __slots__ = ("commit_seconds", "next_commit", "next_report", "report_seconds")

    def __init__(
        self, commit_seconds: float = COMMIT_SECONDS, report_seconds: float = REPORT_SECONDS
    ) -> None:
        if not commit_seconds > 0:
            raise InputValidationError(f"commit_seconds must be positive, got {commit_seconds!r}")
        self.commit_seconds = commit_seconds
        self.report_seconds = min(report_seconds, commit_seconds)
        now = time.time()
        self.next_report = now + self.report_seconds
        self.next_commit = now + commit_seconds

    def report_due(self, at: float) -> bool:
        """Whether calls finished by ``at`` should be reported before more calls finish."""
        return at >= self.next_report

    def reported(self, at: float) -> bool:
        """Calls finished by ``at`` were reported; returns whether to commit them now."""
        self.next_report = at + self.report_seconds
        if at < self.next_commit:
            return False
        self.next_commit = at + self.commit_seconds
        return True
