"""A store backend written only against podline's public API: Arrow IPC files in a directory.

Each path is a directory holding one file per write (``<n>.arrow``) and, after deletes, a
``deleted`` file of removed ids. ``tests/conftest.py`` runs every store-backed test against it,
and docs/stores.md ("Writing a backend") walks through it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.compute as pc

from podline.stores import ScopedStore, StorePath
from podline.stores.backend import (
    check_columns,
    conform,
    evolve_schema,
    pieces,
    row_filter,
    rows_in_order,
)


class IpcBackend:
    """Records of one store: ``root/<quoted segments>/<n>.arrow``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _directory(self, path: StorePath) -> Path:
        # Quoting keeps every segment a single, safe file name ("..", "/" and NUL never reach
        # here: ScopedStore refuses them).
        return self.root.joinpath(*(quote(segment, safe="") for segment in path))

    def _files(self, path: StorePath) -> list[Path]:
        directory = self._directory(path)
        return sorted(directory.glob("*.arrow"), key=lambda f: int(f.stem))

    def _table(self, path: StorePath) -> pa.Table | None:
        files = self._files(path)
        if not files:
            return None
        chunks = [pa.ipc.open_file(f).read_all() for f in files]
        schema = chunks[0].schema
        for chunk in chunks[1:]:
            schema = evolve_schema(schema, chunk.schema, path)
        return pa.concat_tables([conform(chunk, schema, path) for chunk in chunks])

    def write(self, path: StorePath, table: pa.Table, id_column: str, *, fresh: bool) -> int:
        with self._lock:
            stored = self._table(path)
            # Conflicts and missing required columns raise here, at write, as the contract says.
            schema = evolve_schema(None if stored is None else stored.schema, table.schema, path)
            table = conform(table, schema, path)
            if stored is not None and not fresh and id_column in stored.column_names:
                table = table.filter(pc.invert(pc.is_in(table[id_column], stored[id_column])))
            if not table.num_rows:
                return 0
            directory = self._directory(path)
            directory.mkdir(parents=True, exist_ok=True)
            files = self._files(path)
            number = int(files[-1].stem) + 1 if files else 0
            scratch = directory / f".{number}.tmp"
            with pa.ipc.new_file(scratch, table.schema) as writer:
                writer.write_table(table)
            scratch.rename(directory / f"{number}.arrow")  # readers never see half a file
            return table.num_rows

    def read(
        self, path: StorePath, ids: pa.Array, columns: list[str] | None, id_column: str
    ) -> pa.Table | None:
        with self._lock:
            table = self._table(path)
        if table is None:
            return None
        check_columns([id_column, *(columns or ())], table.schema, path)
        ordered = rows_in_order(table, ids, id_column)
        return ordered if columns is None else ordered.select(columns)

    def scan(
        self, path: StorePath, columns: list[str] | None, where: Mapping[str, Any] | None
    ) -> pa.Table | None:
        with self._lock:
            table = self._table(path)
        if table is None:
            return None
        check_columns(columns or (), table.schema, path)
        rows = row_filter(where, table.schema, path)
        if rows is not None:
            table = rows.apply(table)
        return table if columns is None else table.select(columns)

    def scan_batches(self, path: StorePath, columns: list[str] | None) -> Iterator[pa.Table] | None:
        return pieces(self.scan(path, columns, None))  # read whole anyway

    def delete(self, path: StorePath, ids: pa.Array, id_column: str) -> int:
        with self._lock:
            table = self._table(path)
            if table is None or id_column not in table.column_names:
                return 0
            gone = pc.is_in(table[id_column], ids)
            removed = pc.sum(gone).as_py() or 0
            if removed:
                # Rewrite the path as one file of what is kept, then drop the old files.
                files = self._files(path)
                kept = table.filter(pc.invert(gone))
                scratch = self._directory(path) / ".rewrite.tmp"
                with pa.ipc.new_file(scratch, kept.schema) as writer:
                    writer.write_table(kept)
                for f in files:
                    f.unlink()
                scratch.rename(self._directory(path) / f"{int(files[-1].stem) + 1}.arrow")
            return int(removed)

    def exists(self, path: StorePath) -> bool:
        return bool(self._files(path))

    def paths(self, prefix: StorePath) -> Iterable[StorePath]:
        start = self._directory(prefix)
        if not start.is_dir():
            return []
        found = {f.parent for f in start.rglob("*.arrow")}
        return [tuple(unquote(part) for part in d.relative_to(self.root).parts) for d in found]

    def flush(self) -> None:
        """Every write is already a file."""

    def close(self) -> None:
        """Nothing is held open."""

    def config(self) -> str:
        return f"ipc://{self.root}"

    def arguments(self) -> dict[str, Any]:
        return {"root": str(self.root)}


class IpcStore(ScopedStore[IpcBackend]):
    """A store of Arrow IPC files below ``root``; opens ``ipc:///absolute/dir``."""

    __slots__ = ()

    schemes = ("ipc",)

    def __init__(self, root: str | Path) -> None:
        super().__init__(IpcBackend(Path(root).absolute()))

    @classmethod
    def from_base(cls, base: str) -> Self:
        return cls(base.partition("://")[2])
