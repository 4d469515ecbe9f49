"""Helpers for the store tests (the ``store`` fixture lives in ``tests/conftest.py``)."""

from __future__ import annotations

import pyarrow as pa


def records(ids: list[str], **columns: list[object]) -> pa.Table:
    """A table with the default id column and ``columns`` (types inferred by Arrow)."""
    return pa.table({"__record_id": pa.array(ids, pa.large_string()), **columns})
