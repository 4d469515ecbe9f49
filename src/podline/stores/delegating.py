"""``DelegatingStore``: a store that wraps another and forwards every call to it.

Subclass it to change a few calls of any store and keep the rest: ``at`` must return a
wrapper of the same kind around the inner store's view (override ``wrap``), so views stay
wrapped. For example, a store that refuses deletes::

    class NoDeletes(DelegatingStore):
        def delete(self, path, ids, *, id_column=RECORD_ID):
            raise StoreError("deletes are not allowed here")

        def wrap(self, inner):
            return NoDeletes(inner)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import pyarrow as pa

from podline.stores.base import RECORD_ID, PathLike, Store, StorePath
from podline.stores.statistics import StoreStatistics

__all__ = ["DelegatingStore"]


class DelegatingStore:
    """Forwards every ``Store`` call to ``inner``; ``at`` wraps the inner view (``wrap``)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def wrap(self, inner: Store) -> Self:
        """A wrapper like this one around ``inner`` (a view of this one's inner store)."""
        return type(self)(inner)

    @property
    def prefix(self) -> StorePath:
        return self.inner.prefix

    def at(self, *path: str) -> Self:
        return self.wrap(self.inner.at(*path))

    def write(self, path: PathLike, table: pa.Table, *, id_column: str = RECORD_ID) -> int:
        return self.inner.write(path, table, id_column=id_column)

    def append(self, path: PathLike, table: pa.Table, *, id_column: str = RECORD_ID) -> int:
        return self.inner.append(path, table, id_column=id_column)

    def read(
        self,
        path: PathLike,
        ids: Sequence[str] | pa.Array,
        *,
        columns: Sequence[str] | None = None,
        id_column: str = RECORD_ID,
    ) -> pa.Table | None:
        return self.inner.read(path, ids, columns=columns, id_column=id_column)

    def scan(
        self,
        path: PathLike,
        *,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pa.Table | None:
        return self.inner.scan(path, columns=columns, where=where)

    def scan_batches(
        self, path: PathLike, *, columns: Sequence[str] | None = None
    ) -> Iterator[pa.Table] | None:
        return self.inner.scan_batches(path, columns=columns)

    def delete(
        self, path: PathLike, ids: Sequence[str] | pa.Array, *, id_column: str = RECORD_ID
    ) -> int:
        return self.inner.delete(path, ids, id_column=id_column)

    def exists(self, path: PathLike) -> bool:
        return self.inner.exists(path)

    def list(self, prefix: PathLike = ()) -> list[StorePath]:
        return self.inner.list(prefix)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()

    def to_config(self) -> str:
        return self.inner.to_config()

    def statistics(self) -> StoreStatistics:
        return self.inner.statistics()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
