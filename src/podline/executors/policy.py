"""``CallPolicy``: how each call of a function runs, whatever executor runs it.

A policy travels with the calls to the executor (and into worker processes): whether captured
output is echoed live, how much of it is kept, how long a call may run, and which failures are
retried. It never enters an identity: the same call under another policy has the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from podline.errors import CallTimeoutError, FunctionDefinitionError

__all__ = ["DEFAULT_OUTPUT_LIMIT", "CallPolicy", "CallTimeoutError"]

#: Characters of a call's stdout (and of its stderr) kept at the start, and as many at the end.
DEFAULT_OUTPUT_LIMIT = 32 * 1024


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """How the calls of one execution run.

    ``live``: echo captured output as it happens. ``output_limit``: characters of stdout and
    of stderr kept per call at the start, and as many at the end; what lies between is
    dropped and replaced by a line saying how much (``None`` keeps everything).
    ``timeout``: seconds a call may run before it fails with ``CallTimeoutError`` (see
    docs/executors.md for what each executor can interrupt). ``retries``: how many more
    attempts a call gets when it fails with one of ``retry_on``, waiting ``backoff`` seconds
    before the first retry and twice as long before each next one.

    ``fingerprint`` is set by podline, not by users: a picklable function run on each value
    a call returns, in the process that ran the call, right after it returned (before that
    worker starts another call); what it returns travels back as the outcome's
    ``fingerprints``. A function pod whose outputs hold files sets it to fingerprint them
    (``podline.functions.output_files``), so that each result records what its own call
    wrote, before another call can overwrite the file.
    """

    live: bool = True
    output_limit: int | None = DEFAULT_OUTPUT_LIMIT
    timeout: float | None = None
    retries: int = 0
    retry_on: tuple[type[BaseException], ...] = field(default=(OSError,))
    backoff: float = 0.5
    fingerprint: Callable[[Any], Any] | None = field(default=None, repr=False)
    #: No time limit, no retries and nothing to fingerprint: a call is one plain call.
    #: Derived, kept so that the per-call path reads one flag (see ``run_captured``).
    plain: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise FunctionDefinitionError(f"timeout must be positive seconds, got {self.timeout!r}")
        if self.retries < 0:
            raise FunctionDefinitionError(f"retries must be 0 or more, got {self.retries!r}")
        if self.backoff < 0:
            raise FunctionDefinitionError(f"backoff must be 0 or more, got {self.backoff!r}")
        if self.output_limit is not None and self.output_limit < 0:
            raise FunctionDefinitionError(
                f"output_limit must be None or 0 or more, got {self.output_limit!r}"
            )
        kinds = tuple(_exception_types(self.retry_on))
        object.__setattr__(self, "retry_on", kinds)
        plain = self.timeout is None and not self.retries and self.fingerprint is None
        object.__setattr__(self, "plain", plain)

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (2 is the first retry)."""
        return float(self.backoff * 2 ** (attempt - 2))


def _exception_types(kinds: Iterable[type[BaseException]] | type[BaseException]) -> list[type]:
    listed = [kinds] if isinstance(kinds, type) else list(kinds)
    for kind in listed:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise FunctionDefinitionError(f"retry_on takes exception classes, got {kind!r}")
    return listed
