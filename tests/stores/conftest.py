"""Store fixtures: ``store`` runs a test once per backend.

To run the contract suite against a new backend, add one entry to ``BACKENDS``: a function of
a scratch directory returning a fresh, empty store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from podline.stores import DeltaStore, MemoryStore, Store

BACKENDS: dict[str, Callable[[Path], Store]] = {
    "memory": lambda tmp: MemoryStore(),
    # No timed flushes: tests decide when buffers are flushed.
    "delta": lambda tmp: DeltaStore(tmp / "store", flush_seconds=None),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = BACKENDS[request.param](tmp_path)
    yield s
    s.close()


def records(ids: list[str], **columns: list[object]) -> pa.Table:
    """A table with the default id column and ``columns`` (types inferred by Arrow)."""
    return pa.table({"__record_id": pa.array(ids, pa.large_string()), **columns})
