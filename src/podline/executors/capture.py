"""Per-call output capture: stdout, stderr, logging records, exception, timing.

Captures from concurrent threads and asyncio tasks never mix. ``sys.stdout``/``sys.stderr``
are replaced (once, process-wide) by router objects that send each write to the capture that
is active in the *current context* (a ``ContextVar``, so each thread and each asyncio task has
its own), and a root logging handler routes records the same way. Writes outside any capture
go to the original streams untouched. With ``live=True`` captured output is also echoed to the
original stream as it happens.

What a call prints is kept up to its policy's ``output_limit``: that many characters from the
start and as many from the end of stdout (and of stderr), with a line in between saying how
much was dropped, so memory never grows with what a function prints. Failures listed in the
policy's ``retry_on`` are retried (see ``CallPolicy``); the capture counts the attempts.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO

from podline.executors.limits import time_limit
from podline.executors.policy import DEFAULT_OUTPUT_LIMIT, CallPolicy, CallTimeoutError

__all__ = [
    "CallArguments",
    "CallCapture",
    "CallOutcome",
    "LogEntry",
    "failed_capture",
    "run_captured",
    "run_captured_async",
    "timed_capture",
]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One logging record emitted during a call."""

    level: str
    logger: str
    message: str
    time: float


class CallCapture:
    """Everything observed while one call ran. Picklable, so it can leave a worker process.

    ``stdout``/``stderr`` hold what the call printed, ``logs`` its logging records,
    ``error_type``/``error_message``/``traceback`` its exception (None on success), and
    ``start``/``end`` its wall-clock times (seconds since the epoch) and ``attempts`` how many
    times it ran (more than one when a failure was retried).
    """

    # One object per call, which is also the in-progress state. Most calls print nothing and
    # succeed, so the fields default at class level and only what happened is set.
    stdout: str = ""
    stderr: str = ""
    logs: Sequence[LogEntry] = ()
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    end: float = 0.0
    attempts: int = 1
    #: Whether the call printed, logged or raised (``not quiet``), kept as a flag so that
    #: a batch of captures is sorted without reading each one's fields.
    told: bool = False
    _live: bool = False
    _limit: int | None = DEFAULT_OUTPUT_LIMIT
    _out: _Text | None = None
    _err: _Text | None = None

    def __init__(self, live: bool = False, limit: int | None = DEFAULT_OUTPUT_LIMIT) -> None:
        self.start = time.time()
        if live:
            self._live = True
        if limit != DEFAULT_OUTPUT_LIMIT:
            self._limit = limit

    @property
    def duration(self) -> float:
        """Seconds the call took (wall clock)."""
        return self.end - self.start

    @property
    def quiet(self) -> bool:
        """Whether the call printed and logged nothing and returned: all it tells is its times."""
        return not self.told

    @property
    def succeeded(self) -> bool:
        """Whether the call returned without raising."""
        return self.error_type is None

    def __repr__(self) -> str:
        state = "ok" if self.succeeded else f"{self.error_type}: {self.error_message}"
        return f"CallCapture({state}, {self.duration:.6f}s, stdout={len(self.stdout)} chars)"

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class _Bounded:
    """A text buffer that keeps the first ``limit`` and the last ``limit`` characters written,
    and counts what it drops between them."""

    __slots__ = ("dropped", "head", "head_size", "limit", "tail", "tail_size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.dropped = 0

    def write(self, text: str) -> int:
        room = self.limit - self.head_size
        if room > 0:
            self.head.append(text[:room])
            self.head_size += min(room, len(text))
            text = text[room:]
        if text:
            self.tail.append(text)
            self.tail_size += len(text)
            self._trim()
        return len(text)

    def _trim(self) -> None:
        excess = self.tail_size - self.limit
        while excess > 0:
            first = self.tail[0]
            if len(first) <= excess:
                self.tail.popleft()
                cut = len(first)
            else:
                self.tail[0] = first[excess:]
                cut = excess
            self.tail_size -= cut
            self.dropped += cut
            excess -= cut

    def getvalue(self) -> str:
        head, tail = "".join(self.head), "".join(self.tail)
        if not self.dropped:
            return head + tail
        marker = f"\n[podline: {self.dropped:,} characters of output dropped here]\n"
        return head + marker + tail


_Text = io.StringIO | _Bounded

_current: ContextVar[CallCapture | None] = ContextVar("podline_capture", default=None)


class _Router(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr and routes writes to the active capture."""

    def __init__(self, original: TextIO, which: str) -> None:
        self._original = original
        self._which = which

    def write(self, text: str) -> int:
        active = _current.get()
        if active is None:
            return self._original.write(text)
        buffer = getattr(active, self._which)
        if buffer is None:
            buffer = io.StringIO() if active._limit is None else _Bounded(active._limit)
            setattr(active, self._which, buffer)
        buffer.write(text)
        if active._live:
            self._original.write(text)
        return len(text)

    def flush(self) -> None:
        self._original.flush()

    def isatty(self) -> bool:
        return self._original.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._original, "encoding", "utf-8")

    def fileno(self) -> int:
        return self._original.fileno()

    def __getattr__(self, name: str) -> Any:
        # What the stream it stands in for offers beyond a text stream goes to that stream:
        # a Jupyter kernel calls ``sys.stdout.set_parent(message)`` before each cell so that
        # what the cell prints is shown under it; without it, everything printed after a run
        # went to the cell of that run (or nowhere).
        if name.startswith("__") or name in ("_original", "_which"):
            raise AttributeError(name)
        return getattr(self._original, name)


class _LogRouter(logging.Handler):
    """A root handler that keeps records emitted inside a capture.

    Its mere presence would silence Python's last-resort handler (which prints warnings when
    no handler is configured), so where no other handler would see a record it stands in for
    that handler, unless a capture without live output is active.
    """

    def emit(self, record: logging.LogRecord) -> None:
        active = _current.get()
        if active is not None:
            entry = LogEntry(record.levelname, record.name, record.getMessage(), record.created)
            active.logs = [*active.logs, entry]
            active.told = True
        if (active is None or active._live) and not self._others_handle(record):
            last = logging.lastResort
            if last is not None and record.levelno >= last.level:
                last.handle(record)

    def _others_handle(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return True
            logger = logger.parent if logger.propagate else None
        return False


_install_lock = threading.Lock()
_log_router = _LogRouter(level=logging.NOTSET)


def _install() -> None:
    """Put the routers in place. Checked on every call, because test runners, notebooks and
    user code may swap ``sys.stdout`` after podline installed its router."""
    with _install_lock:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout, "_out")
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr, "_err")
        root = logging.getLogger()
        if _log_router not in root.handlers:
            root.addHandler(_log_router)


class CallOutcome(NamedTuple):
    """The result of one call: its return value (or the exception it raised) and its capture;
    and, where the policy asked for them (``CallPolicy.fingerprint``), the fingerprints of
    what it returned, taken where and as soon as it returned (None otherwise)."""

    value: Any
    error: BaseException | None
    capture: CallCapture
    fingerprints: Any = None


def failed_capture(error: BaseException, start: float) -> CallCapture:
    """The capture of a call that failed outside any capture (its worker process died)."""
    capture = CallCapture()
    capture.start = start
    capture.told = True
    capture.error_type = type(error).__qualname__
    capture.error_message = str(error)
    capture.end = time.time()
    return capture


def timed_capture(start: float, end: float) -> CallCapture:
    """The capture of a quiet call that ran from ``start`` to ``end`` (one that came back from
    a worker as its times alone)."""
    capture = CallCapture.__new__(CallCapture)  # no clock read: the times are known
    capture.start = start
    capture.end = end
    return capture


def _begin(policy: CallPolicy) -> tuple[CallCapture, Token[CallCapture | None]]:
    if type(sys.stdout) is not _Router or type(sys.stderr) is not _Router:
        _install()
    capture = CallCapture(policy.live, policy.output_limit)
    return capture, _current.set(capture)


def _finish(
    capture: CallCapture, token: Token[CallCapture | None], error: BaseException | None
) -> None:
    _current.reset(token)
    capture.end = time.time()
    if capture._out is not None:
        capture.stdout = capture._out.getvalue()
        capture.told = capture.told or bool(capture.stdout)
        del capture._out
    if capture._err is not None:
        capture.stderr = capture._err.getvalue()
        capture.told = capture.told or bool(capture.stderr)
        del capture._err
    if error is not None:
        capture.told = True
        capture.error_type = type(error).__qualname__
        capture.error_message = str(error)
        capture.traceback = "".join(traceback.format_exception(error))


#: The arguments of one call: keyword arguments, or positional ones in parameter order.
CallArguments = Mapping[str, Any] | tuple[Any, ...]

_DEFAULT = CallPolicy()


def _timed_out(policy: CallPolicy) -> CallTimeoutError:
    return CallTimeoutError(
        f"the call ran longer than its time limit of {policy.timeout:g} s and was stopped"
    )


def _retrying(policy: CallPolicy, error: BaseException, attempt: int) -> bool:
    """Whether a failed attempt is tried again; if so, says so in the call's stderr."""
    if attempt > policy.retries or not isinstance(error, policy.retry_on):
        return False
    delay = policy.retry_delay(attempt + 1)
    sys.stderr.write(
        f"podline: attempt {attempt} failed with {type(error).__qualname__}: {error}; "
        f"retrying in {delay:g} s\n"
    )
    return True


def _outcome(
    capture: CallCapture,
    token: Token[CallCapture | None],
    value: Any,
    error: BaseException | None,
    attempts: int = 1,
    *,
    fingerprints: Any = None,
) -> CallOutcome:
    """The outcome of a call that returned ``value`` or raised ``error`` (its capture ends)."""
    capture.attempts = attempts
    _finish(capture, token, error)
    return CallOutcome(None if error is not None else value, error, capture, fingerprints)


def _returned(
    policy: CallPolicy,
    capture: CallCapture,
    token: Token[CallCapture | None],
    value: Any,
    attempts: int,
) -> CallOutcome:
    """The outcome of a call that returned ``value``, fingerprinted first if the policy asks
    (within the call's capture: it is part of the call's work, done before any other call of
    this worker starts)."""
    fingerprint = policy.fingerprint
    if fingerprint is None:
        return _outcome(capture, token, value, None, attempts)
    try:
        fingerprints = fingerprint(value)
    except Exception as exc:  # a bug of the fingerprinting fails this call alone
        return _outcome(capture, token, None, exc, attempts)
    return _outcome(capture, token, value, None, attempts, fingerprints=fingerprints)


def run_captured(
    fn: Callable[..., Any], arguments: CallArguments, *, policy: CallPolicy = _DEFAULT
) -> CallOutcome:
    """Call ``fn`` with ``arguments`` under ``policy``, capturing its output; exceptions are
    returned, not raised (``KeyboardInterrupt`` and other non-``Exception`` errors propagate)."""
    previous = _current.get()
    try:
        capture, token = _begin(policy)
        if not policy.plain:  # a time limit, retries or fingerprints
            return _attempts(fn, arguments, policy, capture, token)
        # The common case, kept to one call and no context manager: it runs per packet.
        try:
            value = fn(*arguments) if isinstance(arguments, tuple) else fn(**arguments)
        except Exception as exc:  # the call's failure is data for the caller, never ours
            return _outcome(capture, token, None, exc)
        # (_outcome inlined: this line runs once per packet)
        _finish(capture, token, None)
        return CallOutcome(value, None, capture)
    except BaseException:
        # Ctrl-C anywhere here, even between the capture becoming current and the call, or
        # between the call's return and its end: later output is not the call's any more
        # (it would swallow what the caller prints next, e.g. a report of the interrupt).
        _current.set(previous)
        raise


def _attempts(
    fn: Callable[..., Any],
    arguments: CallArguments,
    policy: CallPolicy,
    capture: CallCapture,
    token: Token[CallCapture | None],
) -> CallOutcome:
    attempt = 1
    while True:
        try:
            try:
                with time_limit(policy.timeout):
                    value = fn(*arguments) if isinstance(arguments, tuple) else fn(**arguments)
            except CallTimeoutError:
                raise _timed_out(policy) from None
        except Exception as exc:  # the call's failure is data for the caller, never ours
            if _retrying(policy, exc, attempt):
                time.sleep(policy.retry_delay(attempt + 1))
                attempt += 1
                continue
            return _outcome(capture, token, None, exc, attempt)
        return _returned(policy, capture, token, value, attempt)


async def run_captured_async(
    fn: Callable[..., Awaitable[Any]], arguments: CallArguments, *, policy: CallPolicy = _DEFAULT
) -> CallOutcome:
    """Await ``fn`` with ``arguments`` under ``policy``, capturing; runs in the current task's
    own context (a timeout cancels the coroutine)."""
    previous = _current.get()
    try:
        capture, token = _begin(policy)
        return await _attempts_async(fn, arguments, policy, capture, token)
    except BaseException:  # cancelled: later output is not the call's any more
        _current.set(previous)
        raise


async def _attempts_async(
    fn: Callable[..., Awaitable[Any]],
    arguments: CallArguments,
    policy: CallPolicy,
    capture: CallCapture,
    token: Token[CallCapture | None],
) -> CallOutcome:
    import asyncio

    attempt = 1
    while True:
        try:
            limit = asyncio.timeout(policy.timeout)
            try:
                async with limit:
                    call = fn(*arguments) if isinstance(arguments, tuple) else fn(**arguments)
                    value = await call
            except TimeoutError:
                if not limit.expired():
                    raise  # the function's own TimeoutError
                raise _timed_out(policy) from None
        except Exception as exc:  # the call's failure is data for the caller, never ours
            if _retrying(policy, exc, attempt):
                await asyncio.sleep(policy.retry_delay(attempt + 1))
                attempt += 1
                continue
            return _outcome(capture, token, None, exc, attempt)
        # Fingerprinted before this task yields: no other call on this loop runs meanwhile.
        return _returned(policy, capture, token, value, attempt)
