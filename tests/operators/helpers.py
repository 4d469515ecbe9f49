"""Shared builders for the operator tests: small sources and row comparisons."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from podline import DictSource, Stream
from podline.columns import is_system_tag
from podline.streams import ProducedStream


def source(
    rows: Sequence[dict[str, Any]],
    tags: Sequence[str] = ("id",),
    *,
    label: str = "S",
    schema: dict[str, Any] | None = None,
    source_id: str | None = None,
) -> DictSource:
    """A ``DictSource`` with a label (and, optionally, a schema for empty rows)."""
    return DictSource(list(rows), tags, schema=schema, label=label, source_id=source_id)


def full(stream: Stream) -> pa.Table:
    """Every column of a stream (hidden ones included, content hash excluded)."""
    return stream.as_table(system_tags=True, source_info=True)


def user_rows(stream: Stream) -> Counter[tuple[tuple[str, Any], ...]]:
    """The multiset of (column, value) rows over tag and packet columns, order-free."""
    return Counter(tuple(sorted(row.items())) for row in stream.as_table().to_pylist())


def system_tag_names(stream: Stream) -> list[str]:
    """The system-tag column names a stream declares."""
    tags, _ = stream.output_schema(system_tags=True)
    return [name for name in tags if is_system_tag(name)]


def assert_prediction_matches(stream: Stream) -> None:
    """A produced stream's predicted schemas equal those of its computed table."""
    assert isinstance(stream, ProducedStream)
    computed = stream.producer.process(*stream.upstreams)
    for flag in (False, True):
        predicted = stream.output_schema(system_tags=flag)
        actual = computed.output_schema(system_tags=flag)
        assert predicted == actual
        assert [list(s) for s in predicted] == [list(s) for s in actual]  # column order too
