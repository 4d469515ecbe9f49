"""A clean end to every process that imported podline: native background work finishes while
the interpreter can still serve it.

Arrow's and delta-rs's worker threads run outside Python and call back into it, for instance
to release a buffer that a Python file object (such as the file system delta-rs gives Arrow)
handed them. Once the interpreter has begun to shut down, CPython ends any thread that asks
for the GIL by unwinding it, and unwinding through Arrow's C++ frames aborts the process:
``terminate called without an active exception``, exit status 134, after all of its work was
done (delta-io/delta-rs#2184, pola-rs/polars#24169, apache/arrow#34314). It happens when such
a thread is still finishing, typically when the machine is loaded: 8 of 30 plain delta-rs
reads aborted on a loaded two-core machine.

So at exit, after the stores have flushed and let go of their delta-rs handles (their own exit
hooks run first), podline collects garbage if delta-rs was loaded (freeing delta-rs and Arrow
objects that cycles kept alive) and waits, releasing the GIL meanwhile, until every thread
Python did not start is idle: two checks in a row, a few milliseconds apart, find each one
sleeping. Threads waiting for the GIL
get it during the wait and finish. On Linux idleness is read from ``/proc``; elsewhere podline
waits a fixed 20 ms. The wait is bounded (``EXIT_WAIT_SECONDS``), so a thread that never goes
idle delays an exit by at most that much. A thread asleep on a network reply when the wait
ends can still wake too late; nothing short of the libraries joining their threads avoids it.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
import time

__all__ = ["EXIT_WAIT_SECONDS", "settle_native_threads"]

#: The longest an exit waits for native threads to go idle.
EXIT_WAIT_SECONDS = 2.0
_TASKS = "/proc/self/task"
_STEP = 0.002
#: Thread states of a thread that waits for something (``man 5 proc``: sleeping, idle).
_WAITING = frozenset({b"S", b"I"})


def _busy_native_threads() -> int:
    """How many threads Python did not start are running or runnable (Linux)."""
    python = {t.native_id for t in threading.enumerate()}
    busy = 0
    for name in os.listdir(_TASKS):
        if int(name) in python:
            continue
        try:
            with open(f"{_TASKS}/{name}/stat", "rb") as stat:
                state = stat.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):  # the thread ended meanwhile
            continue
        busy += state not in _WAITING
    return busy


def settle_native_threads(limit: float = EXIT_WAIT_SECONDS) -> bool:
    """Wait (at most ``limit`` seconds, the GIL released) until every native thread is
    idle, after collecting garbage if delta-rs was loaded; True if they all were idle."""
    if "deltalake" in sys.modules:
        gc.collect()  # (40-60 ms in a large process: only where delta-rs handles may linger)
    if not os.path.isdir(_TASKS):
        time.sleep(0.02)
        return True
    deadline = time.monotonic() + limit
    calm = 0
    while calm < 2:
        if time.monotonic() > deadline:
            return False
        time.sleep(_STEP)
        calm = calm + 1 if not _busy_native_threads() else 0
    return True


# Registered when podline is first imported, so it runs after the exit hooks of every store
# (registered later; atexit runs hooks last-registered first).
atexit.register(settle_native_threads)
