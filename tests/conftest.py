"""Shared test configuration: hypothesis profiles ("ci" when the CI variable is set) and the
``store`` fixture, which runs a test once per store backend.

To run every store-backed test against a new backend, add one entry to ``BACKENDS``: a
function of a scratch directory returning a fresh, empty store.
"""

from __future__ import annotations

import os
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


settings.register_profile("ci", deadline=None, max_examples=100)
settings.register_profile("dev", deadline=None, max_examples=30)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
