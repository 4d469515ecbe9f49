"""Shared test configuration: hypothesis profiles ("ci" when the CI variable is set) and the
``store`` fixture, which runs a test once per store backend, and ``eventually``, which polls
for what background threads do.

To run every store-backed test against a new backend, add one entry to ``BACKENDS``: a
function of a scratch directory returning a fresh, empty store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
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


settings.register_profile("ci", deadline=None, max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=30)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
