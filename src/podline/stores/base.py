"""The ``Store`` protocol: an Arrow-native, path-scoped record store.

A store holds tables of records at paths (tuples of name segments, written ``"a/b"`` or
``("a", "b")``). Every record has a string id in an id column (``RECORD_ID`` unless told
otherwise). The contract every backend honours:

* **Scoped views.** ``store.at("a", "b")`` is a view whose paths are relative to ``a/b``;
  ``store.at("a").at("b") == store.at("a", "b")``. Views share the backend and its buffers.
* **Write once.** A record id is written once. Writing an existing id again is a no-op (no
  error), and so is a repeat inside one batch: the first occurrence wins. ``write`` returns
  how many records were actually added.
* **Delete.** ``delete`` removes records by id, stored or buffered. Write-once holds for the
  records a path holds: a removed id may be written again (that is how a stale or unwanted
  result is replaced). Readers see a deletion like a write: all of it, once flushed.
* **Append.** ``append`` adds records whose ids are new by construction (a random prefix and a
  sequence number, say): the store takes the caller's word and skips the write-once check,
  whose cost grows with what the path holds. Observations (status, logs) are appended.
* **Read your writes.** A read through a store object (or any view of it) sees every write
  made through it, whether or not it has been flushed.
* **Reads.** ``read`` (by ids) and ``scan`` (a whole path, with column projection and simple
  equality filters) return ``None`` when nothing was ever written at the path, and otherwise a
  table typed by the path's schema, possibly empty. ``read`` returns rows in the order of the
  requested ids; ids not stored are left out. ``scan_batches`` gives what ``scan`` would (no
  filter), as consecutive pieces, so a reader of a large path need not hold it whole.
* **Writes fail at write().** A batch holding what no backend could commit (see
  ``_storable``) is refused by ``write``/``append`` with a ``StoreError``; nothing is taken.
* **Schema evolution** is additive: a write may add nullable columns; a column whose type
  conflicts with the stored one is a ``StoreError`` naming it.
* ``flush()`` persists buffered writes and raises if that fails; ``close()`` flushes and
  releases resources; a store is a context manager that closes on exit.
* ``statistics()`` counts the calls made to the store, by operation and path.
* ``to_config()`` gives a URL-like string that ``open_store`` turns back into an equivalent
  store, so a store can be named in a saved pipeline or on the command line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pyarrow as pa

if TYPE_CHECKING:  # statistics imports this module
    from podline.stores.statistics import StoreStatistics

__all__ = ["RECORD_ID", "PathLike", "Store", "StorePath", "normalize_path"]

#: The default id column of stored records.
RECORD_ID = "__record_id"

StorePath = tuple[str, ...]
PathLike = str | Sequence[str]


def normalize_path(path: PathLike) -> StorePath:
    """``"a/b"`` or ``("a", "b")`` -> ``("a", "b")``; empty segments are dropped."""
    parts = path.split("/") if isinstance(path, str) else list(path)
    return tuple(p for p in parts if p)


def segment_problem(segment: str) -> str | None:
    """What makes ``segment`` no path segment of any store, or None if it is one: it may hold
    any character except ``/`` and NUL, and may not be ``.`` or ``..`` (backends map segments
    to directories, table names or keys, and those two would alias)."""
    if "/" in segment or "\x00" in segment or segment in (".", ".."):
        return "segments may not contain '/' or NUL, nor be '.' or '..'"
    return None


@runtime_checkable
class Store(Protocol):
    """A path-scoped store of Arrow records (see the module docs for the contract)."""

    @property
    def prefix(self) -> StorePath:
        """The scope of this view: every path it takes is relative to this."""
        ...

    def at(self, *path: str) -> Store:
        """A view scoped to ``path`` below this one."""
        ...

    def write(self, path: PathLike, table: pa.Table, *, id_column: str = RECORD_ID) -> int:
        """Add the records of ``table`` at ``path``; existing ids are skipped. Returns the
        number of records added."""
        ...

    def append(self, path: PathLike, table: pa.Table, *, id_column: str = RECORD_ID) -> int:
        """Add the records of ``table`` at ``path``, whose ids the caller guarantees were never
        written there and are distinct (unchecked). Returns the number of records added."""
        ...

    def read(
        self,
        path: PathLike,
        ids: Sequence[str] | pa.Array,
        *,
        columns: Sequence[str] | None = None,
        id_column: str = RECORD_ID,
    ) -> pa.Table | None:
        """The records with these ids, in the order asked, projected to ``columns``."""
        ...

    def scan(
        self,
        path: PathLike,
        *,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pa.Table | None:
        """Every record at ``path`` whose columns equal the values in ``where``."""
        ...

    def scan_batches(
        self, path: PathLike, *, columns: Sequence[str] | None = None
    ) -> Iterator[pa.Table] | None:
        """Every record at ``path``, projected to ``columns``, as tables that concatenate to
        what ``scan`` gives (the same rows in the same order, of the path as it was when
        called); None if nothing was ever stored there. Pieces are as large as the store
        reads at once (a Parquet row group, say); a store may give a single piece."""
        ...

    def delete(
        self, path: PathLike, ids: Sequence[str] | pa.Array, *, id_column: str = RECORD_ID
    ) -> int:
        """Remove the records with these ids; returns how many were removed."""
        ...

    def exists(self, path: PathLike) -> bool:
        """Whether anything was ever written at ``path``."""
        ...

    def list(self, prefix: PathLike = ()) -> list[StorePath]:
        """Every path with records at or below ``prefix``, relative to this view, sorted."""
        ...

    def flush(self) -> None:
        """Persist buffered writes; raises if persisting fails."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...

    def to_config(self) -> str:
        """A URL-like string ``open_store`` accepts (e.g. ``memory://`` or a directory)."""
        ...

    def statistics(self) -> StoreStatistics:
        """How often the store was used: calls by operation and path (``StoreStatistics``)."""
        ...

    def __enter__(self) -> Store: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
