"""Worker processes that end as soon as the process owning their pool is gone.

A ``ProcessPoolExecutor`` worker waits for calls on a queue whose write end every worker
holds too, so when the owner dies without shutting its pool down (SIGKILL, the out-of-memory
killer) nothing tells the workers: they go on running the calls they hold, whose results can no
longer be committed, and keep the owner's stdout and stderr open, so whoever reads those pipes
waits. The forkserver and multiprocessing's resource tracker live on with them: each ends when
no process holds its pipe any more, and the workers hold both.

``watch_owner`` runs in every worker (the pool's ``initializer``) and starts a daemon thread
that ends the worker with ``os._exit`` once the owner has ended. The owner's pid is passed in:
under ``forkserver`` a worker's parent is the forkserver, not the owner. On Linux the thread
waits on a pidfd, which becomes readable the moment the owner ends (a zombie owner counts as
ended) and cannot be fooled by the pid being reused later. Elsewhere it checks every
``POLL_SECONDS`` whether the owner still exists (an owner its parent has not reaped yet still
does there).

``os._exit`` skips cleanup on purpose: there is no one left to report to, and a worker must
not wait for the call it is running. A call inside C code that holds the GIL delays the exit
until it returns to Python.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import threading
import time

__all__ = ["POLL_SECONDS", "watch_owner"]

#: How often a worker checks on its owner where it cannot wait on a pidfd.
POLL_SECONDS = 0.5


def watch_owner(owner: int) -> None:
    """Start a daemon thread that ends this process once process ``owner`` has ended."""
    watch = threading.Thread(target=_wait_then_exit, args=(owner,), name="podline-lifeline")
    watch.daemon = True  # never holds up the worker's own exit
    watch.start()


def _wait_then_exit(owner: int) -> None:
    try:
        pidfd = os.pidfd_open(owner)
    except ProcessLookupError:
        pass  # it ended before this worker started
    except (AttributeError, OSError):  # no pidfd: not Linux, Linux before 5.3, a seccomp filter
        while _running(owner):
            time.sleep(POLL_SECONDS)
    else:
        select.select([pidfd], [], [])  # readable once the owner has ended
    os._exit(1)


def _running(owner: int) -> bool:
    if os.name == "nt":
        # os.kill would terminate the owner here. Windows has only the spawn start method, so
        # the owner is this worker's parent, whose handle multiprocessing keeps.
        parent = multiprocessing.parent_process()
        return parent is None or parent.is_alive()
    try:
        os.kill(owner, 0)  # signal 0: nothing is sent, only whether the process exists
    except (ProcessLookupError, PermissionError):  # gone, or the pid reused by another user
        return False
    return True
