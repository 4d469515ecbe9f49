"""``ScopedStore``: the half of a store every backend shares (``Backend`` is the half it supplies).

A store object is a view: a backend (which holds the records, buffers and handles) and a path
prefix. ``at()`` makes another view of the same backend, so views share buffers and
read-your-writes holds across them. This class resolves paths, validates arguments and applies
the batch rules every backend shares; a backend receives only full, validated paths and
canonical, first-occurrence batches. A store pickles as the way to reopen it: its class called
with ``Backend.arguments()``.

To add a backend, implement ``podline.stores.backend.Backend`` and subclass ``ScopedStore``
with the URL ``schemes`` it opens and ``from_base``; ``register_store`` (or an entry point)
lets ``open_store`` find it. docs/stores.md, "Writing a backend", has a worked example.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

import pyarrow as pa

from podline.columns import column_names
from podline.errors import StoreError
from podline.stores._common import (
    add_prefix,
    id_array,
    join_path,
    prepare_batch,
    record_path,
    split_config,
)
from podline.stores._storable import check_storable
from podline.stores.backend import Backend
from podline.stores.base import RECORD_ID, PathLike, StorePath, normalize_path
from podline.stores.statistics import StoreStatistics, UsageCounter

__all__ = ["ScopedStore"]


B = TypeVar("B", bound=Backend)


class ScopedStore(ABC, Generic[B]):
    """A view of a backend below a path prefix; implements the ``Store`` protocol."""

    __slots__ = ("_backend", "_prefix", "_usage")

    #: URL schemes ``from_config`` accepts for this class.
    schemes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, backend: B, prefix: StorePath = ()) -> None:
        self._backend = backend
        self._prefix = prefix
        self._usage = UsageCounter()

    # -- views

    @property
    def prefix(self) -> StorePath:
        """The scope of this view: every path it takes is relative to this."""
        return self._prefix

    def at(self, *path: str) -> Self:
        """A view scoped to ``path`` below this one (``"a/b"`` and ``"a", "b"`` are equal)."""
        view = object.__new__(type(self))  # another view of this backend, not a new store
        view._backend = self._backend
        view._usage = self._usage
        view._prefix = join_path(self._prefix, [s for part in path for s in normalize_path(part)])
        return view

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScopedStore):
            return NotImplemented
        return self._backend is other._backend and self._prefix == other._prefix

    def __hash__(self) -> int:
        return hash((id(self._backend), self._prefix))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_config()!r})"

    # -- records

    def write(self, path: PathLike, table: pa.Table, *, id_column: str = RECORD_ID) -> int:
        """Add the records of ``table`` at ``path``; ids already stored, and repeats inside
        ``table`` after their first row, are skipped. Returns how many records were added."""
        full = record_path(self._prefix, path)
        batch = prepare_batch(table, id_column, full)
        check_storable(batch, full)
        self._usage.add("write", full)
        return self._backend.write(full, batch, id_column, fresh=False)

    def append(self, path: PathLike, table: pa.Table, *, id_column: str = RECORD_ID) -> int:
        """Add the records of ``table`` at ``path``, whose ids the caller guarantees are
        distinct and were never written there: no write-once check, whose cost grows with
        what the path holds. Returns how many records were added (all of them)."""
        full = record_path(self._prefix, path)
        batch = prepare_batch(table, id_column, full, distinct=True)
        check_storable(batch, full)
        self._usage.add("append", full)
        return self._backend.write(full, batch, id_column, fresh=True)

    def read(
        self,
        path: PathLike,
        ids: Sequence[str] | pa.Array,
        *,
        columns: Sequence[str] | None = None,
        id_column: str = RECORD_ID,
    ) -> pa.Table | None:
        """The records with these ids, in the order asked (absent ids left out), projected to
        ``columns``; None if nothing was ever stored at ``path``."""
        full = record_path(self._prefix, path)
        self._usage.add("read", full)
        return self._backend.read(full, id_array(ids), _names(columns), id_column)

    def delete(
        self, path: PathLike, ids: Sequence[str] | pa.Array, *, id_column: str = RECORD_ID
    ) -> int:
        """Remove the records with these ids (a removed id may be written again); returns
        how many were removed."""
        full = record_path(self._prefix, path)
        if not len(ids):
            return 0
        self._usage.add("delete", full)
        return self._backend.delete(full, id_array(ids), id_column)

    def scan(
        self,
        path: PathLike,
        *,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pa.Table | None:
        """Every record at ``path`` whose columns equal the values in ``where`` (``None``
        matches null), projected to ``columns``; None if nothing was ever stored there."""
        full = record_path(self._prefix, path)
        self._usage.add("scan", full)
        return self._backend.scan(full, _names(columns), where)

    def scan_batches(
        self, path: PathLike, *, columns: Sequence[str] | None = None
    ) -> Iterator[pa.Table] | None:
        """Every record at ``path``, projected to ``columns``, as consecutive tables (what
        ``scan`` gives, in pieces); None if nothing was ever stored there. Counted as a
        scan."""
        full = record_path(self._prefix, path)
        self._usage.add("scan", full)
        return self._backend.scan_batches(full, _names(columns))

    def exists(self, path: PathLike) -> bool:
        """Whether records are stored at ``path``."""
        full = join_path(self._prefix, path)
        return bool(full) and self._backend.exists(full)

    def list(self, prefix: PathLike = ()) -> list[StorePath]:
        """Every path with records at or below ``prefix``, relative to this view, sorted."""
        full = join_path(self._prefix, prefix)
        cut = len(self._prefix)
        return sorted({p[cut:] for p in self._backend.paths(full)})

    def statistics(self) -> StoreStatistics:
        """How often this store was used since it was opened: calls by operation and path,
        for paths at or below this view (relative to it), counted across all its views."""
        return self._usage.snapshot(self._prefix)

    # -- lifecycle

    def flush(self) -> None:
        """Persist buffered writes of every view of this store; raises if that fails."""
        self._usage.add("flush", ())
        self._backend.flush()

    def close(self) -> None:
        """Flush and release resources (of every view: they share them). A closed store
        reopens what it needs if it is used again."""
        self._backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Flush even when the block failed: what was computed before the failure is kept.
        self.close()

    # -- configs

    def to_config(self) -> str:
        """A URL-like string ``open_store`` turns back into an equivalent view."""
        return add_prefix(self._backend.config(), self._prefix)

    @classmethod
    def from_config(cls, config: str) -> Self:
        """The store (view) a config string names; the scheme must be one of ``schemes``."""
        base, prefix = split_config(config)
        scheme = base.partition("://")[0].lower() if "://" in base else ""
        if scheme not in cls.schemes:
            raise StoreError(
                f"{cls.__name__} cannot open {config!r}: it takes "
                + ", ".join(f"{s}://" if s else "a directory path" for s in cls.schemes)
            )
        store = cls.from_base(base)
        return store.at(*prefix) if prefix else store

    @classmethod
    @abstractmethod
    def from_base(cls, base: str) -> Self:
        """The root store a config names, without its ``#prefix`` fragment (the scheme is
        already checked to be one of ``schemes``)."""

    def __reduce__(self) -> tuple[Any, ...]:
        # A store pickles as how to open it again (e.g. in an executor's worker process):
        # the copy reaches the same records, but neither buffers nor handles travel.
        return (_reopen, (type(self), self._backend.arguments(), self._prefix))


def _reopen(cls: type[ScopedStore[Any]], arguments: dict[str, Any], prefix: StorePath) -> Any:
    return cls(**arguments).at(*prefix)


def _names(columns: str | Sequence[str] | None) -> list[str] | None:
    return None if columns is None else list(column_names(columns))
