"""Shared test configuration: hypothesis profiles ("ci" when the CI variable is set) and the
``store`` fixture, which runs a test once per store backend, ``eventually``, which polls
for what background threads do, and ``ctrl_c_in_a_notebook``, which presses Ctrl-C while a
notebook cell runs.

To run every store-backed test against a new backend, add one entry to ``BACKENDS``: a
function of a scratch directory returning a fresh, empty store.
"""

from __future__ import annotations

import _thread
import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from podline.stores import DeltaStore, MemoryStore, Store

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "memory": lambda tmp: MemoryStore(),
    # No timed flushes: tests decide when buffers are flushed.
    "delta": lambda tmp: DeltaStore(tmp / "store", flush_seconds=None),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    backend = BACKENDS[request.param](tmp_path)
    yield backend
    backend.close()


def _eventually(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll ``condition`` (for what a background thread does) until it holds or time is up."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.fixture
def eventually() -> Callable[..., bool]:
    """``eventually(condition, seconds=10.0)``: poll until ``condition()`` holds."""
    return _eventually


def _ctrl_c_in_a_notebook(cell: Callable[[], Awaitable[None]], after: float) -> float:
    """Run ``cell()`` on a bare event loop, as a Jupyter kernel does (no ``asyncio.run``
    handler turning SIGINT into a cancel), with Ctrl-C (a KeyboardInterrupt in the main
    thread) ``after`` seconds in; check the interrupt came through and return how long the
    cell took."""
    loop = asyncio.new_event_loop()
    timer = threading.Timer(after, _thread.interrupt_main)
    timer.start()
    started = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(cell())
    finally:
        timer.join()
        loop.close()
    return time.perf_counter() - started


@pytest.fixture
def ctrl_c_in_a_notebook() -> Callable[[Callable[[], Awaitable[None]], float], float]:
    """``ctrl_c_in_a_notebook(cell, after)``: see ``_ctrl_c_in_a_notebook`` (skips where
    Python does not own SIGINT, or off the main thread)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        pytest.skip("needs the main thread and Python's own SIGINT handler")
    return _ctrl_c_in_a_notebook


settings.register_profile("ci", deadline=None, max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=30)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
