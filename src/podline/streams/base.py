"""The ``Stream`` protocol: an immutable, finite table of (Tag, Packet) rows.

Everything that produces rows (sources, operator results, function-pod results, pipeline
nodes) satisfies this protocol; consumers depend on it, never on a concrete class.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pyarrow as pa

from podline.datagrams import Packet, Tag
from podline.hashing import PipelineElement
from podline.schema import Schema

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Stream"]


@runtime_checkable
class Stream(PipelineElement, Protocol):
    """An immutable, finite sequence of (Tag, Packet) rows sharing one schema.

    ``content_hash()`` covers the data; ``pipeline_hash()`` covers only the schemas and the
    topology that produced the stream.
    """

    @property
    def label(self) -> str:
        """A human-readable name (not part of any identity)."""
        ...

    def keys(self, *, system_tags: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(tag column names, packet column names); system tags follow the tags on request."""
        ...

    def output_schema(self, *, system_tags: bool = False) -> tuple[Schema, Schema]:
        """(tag schema, packet schema); system tags are added to the tag schema on request."""
        ...

    def iter_packets(self) -> Iterator[tuple[Tag, Packet]]:
        """Every row as a (Tag, Packet) pair, in stream order."""
        ...

    def __iter__(self) -> Iterator[tuple[Tag, Packet]]: ...

    def __len__(self) -> int: ...

    def as_table(
        self,
        *,
        system_tags: bool = False,
        source_info: bool = False,
        content_hash: bool | str = False,
        sort_by_tags: bool = False,
        all_info: bool = False,
    ) -> pa.Table:
        """The rows as an Arrow table: tag columns, then packet columns, then what was asked.

        ``system_tags`` and ``source_info`` add the hidden columns; ``content_hash`` appends a
        per-row packet hash column (``__content_hash``, or the given name); ``sort_by_tags``
        orders rows by the tag columns; ``all_info`` turns on everything except sorting.
        """
        ...

    def to_polars(self, **options: Any) -> pl.DataFrame:
        """``as_table(**options)`` as a polars DataFrame."""
        ...

    def to_pandas(self, **options: Any) -> Any:
        """``as_table(**options)`` as a pandas DataFrame (needs pandas installed)."""
        ...
