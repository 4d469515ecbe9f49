"""``Backend``: what a store backend implements, and the helpers that make writing one short.

A store is two halves. ``ScopedStore`` (``podline.stores.scoped``) is the half every backend
shares: path views, argument checks, the write-once batch rules, refusing what no backend can
store, configs and pickling. A ``Backend`` is the half that decides where records live: it
receives only full, validated paths and canonical batches whose ids are distinct.

What a backend must still get right, and the helpers here that do it the way the built-in
backends do (so every backend reports the same errors for the same mistakes):

* **Schema evolution**: ``evolve_schema(stored, incoming, path)`` gives a path's schema after a
  write (or raises ``StoreError`` naming the conflicting column); ``conform(table, schema,
  path)`` brings a batch, or an older stored chunk, to that schema.
* **Reads**: ``check_columns`` names the asked-for columns a path lacks; ``row_filter`` turns a
  ``scan``'s ``where`` into a validated filter (``RowFilter.apply``); ``rows_in_order`` returns
  a ``read``'s rows in the order of the requested ids.
* **Messages**: ``path_text(path)`` writes a path as users do (``"a/b"``).
* **Pieces**: ``pieces(table)`` splits a table read whole into the consecutive pieces
  ``scan_batches`` gives, for a backend that has no cheaper way to read a path in pieces.

docs/stores.md ("Writing a backend") builds a complete backend from these, and
``tests/extensions`` runs the whole store contract against one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

import pyarrow as pa

from podline.matching import rows_in_order
from podline.stores._common import (
    RowFilter,
    check_columns,
    conform,
    evolve_schema,
    path_text,
    pieces,
    row_filter,
)
from podline.stores.base import StorePath

__all__ = [
    "Backend",
    "RowFilter",
    "check_columns",
    "conform",
    "evolve_schema",
    "path_text",
    "pieces",
    "row_filter",
    "rows_in_order",
]


class Backend(Protocol):
    """What a backend implements; every path is full (never empty) and already validated.

    Batches reaching ``write`` are canonical: Arrow types in podline's canonical physical form,
    the id column present, string-typed and free of nulls, and no id repeated. Errors a backend
    raises for the caller's mistakes are ``podline.errors.StoreError`` naming the path (and the
    column, where one is at fault).
    """

    def write(self, path: StorePath, table: pa.Table, id_column: str, *, fresh: bool) -> int:
        """Store the rows of ``table`` whose ids are not stored at ``path`` yet and return how
        many that was; with ``fresh``, every id is new (the caller's word: no check)."""
        ...

    def read(
        self, path: StorePath, ids: pa.Array, columns: list[str] | None, id_column: str
    ) -> pa.Table | None:
        """The rows with ``ids`` in their order, absent ids left out, projected to
        ``columns`` (all when None); None if nothing was ever stored at ``path``."""
        ...

    def scan(
        self, path: StorePath, columns: list[str] | None, where: Mapping[str, Any] | None
    ) -> pa.Table | None:
        """Every row at ``path`` passing ``where`` (see ``row_filter``), projected to
        ``columns``; None if nothing was ever stored at ``path``."""
        ...

    def scan_batches(self, path: StorePath, columns: list[str] | None) -> Iterator[pa.Table] | None:
        """``scan(path, columns, None)`` as consecutive pieces (see ``Store.scan_batches``).
        A backend that reads whole tables anyway gives ``pieces(scan(...))``."""
        ...

    def delete(self, path: StorePath, ids: pa.Array, id_column: str) -> int:
        """Remove the rows with ``ids`` (stored or buffered); returns how many there were."""
        ...

    def exists(self, path: StorePath) -> bool:
        """Whether records are stored (or buffered) at ``path``."""
        ...

    def paths(self, prefix: StorePath) -> Iterable[StorePath]:
        """Every full path holding records at or below ``prefix``, in any order."""
        ...

    def flush(self) -> None:
        """Persist buffered writes; raise ``StoreError`` if that fails."""
        ...

    def close(self) -> None:
        """Flush and release resources; the backend reopens what it needs if used again."""
        ...

    def config(self) -> str:
        """The config string of the backend's root view (``scheme://...``), which the store
        class's ``from_config`` turns back into an equivalent store."""
        ...

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of the store class that build an equivalent store (secrets
        included: they stay inside pickles, which is what this is for)."""
        ...
