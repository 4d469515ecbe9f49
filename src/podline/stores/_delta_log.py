"""What a ``DeltaStore`` knows of one Delta table at one version: the ``TableLog`` protocol,
and delta-rs's implementation of it (``DeltaRsLog``, ``write_with_delta_rs``).

delta-rs costs milliseconds of fixed work per table opened and per commit (3-9 ms to open a
table, 5-12 ms to append three rows), which is most of a small cached run, so plain local
tables are read and appended to by podline itself (``_delta_local.LocalLog``, which
``_delta_local.open_log`` picks where it can), and merged by it too (``TableLog.write_merge``,
``TableLog.commit_merge``).
Anything else goes through delta-rs: object stores, tables with features podline's reader
does not interpret (``UnsupportedTable``), columns whose type delta-rs converts on the way in,
and schema changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import pyarrow as pa
from pyarrow import fs as pafs

from podline.errors import StoreError
from podline.stores._delta_actions import data_file
from podline.stores._delta_format import (
    ParquetSettings,
    UnsupportedTable,
    delta_rows,
    first_line,
)

if TYPE_CHECKING:
    # Loaded only when delta-rs does the work: a run on plain local tables never needs it,
    # and it costs some 40 ms and 16-33 MB of mapped code to load.
    from deltalake import DeltaTable

__all__ = [
    "CommitConflict",
    "DeltaRsLog",
    "Merge",
    "TableLog",
    "UnsupportedTable",
    "all_fields",
    "first_line",
    "local_filesystem",
    "write_with_delta_rs",
]


class CommitConflict(Exception):  # noqa: N818 - the optimistic protocol's ordinary outcome
    """Another writer committed the version an append was made for."""


class Merge(NamedTuple):
    """Merged data files written but not committed yet (``TableLog.write_merge``): what
    their commit adds and removes."""

    #: The files written, one a bin.
    files: tuple[Path, ...]
    #: The ``remove`` actions of the files merged (their paths as the log gives them), but
    #: for their ``deletionTimestamp``: the commit's time, set by ``commit_merge``.
    removes: tuple[dict[str, Any], ...]
    #: The ``add`` actions of ``files``.
    adds: tuple[dict[str, Any], ...]
    #: The table's schema (its ``schemaString``) the files were written in.
    schema: str

    def discard(self) -> None:
        """Delete the files (a merge that will not be committed: no commit refers to them)."""
        for data in self.files:
            data.unlink(missing_ok=True)


class TableLog(Protocol):
    """A Delta table at one version, as the store reads it."""

    #: The table's location (a directory or URL).
    uri: str

    def version(self) -> int:
        """The version this log is at."""
        ...

    def schema(self) -> pa.Schema:
        """The table's schema as Arrow types, with each field's Delta metadata (podline's
        types: ``_delta_format.path_schema``)."""
        ...

    def data_files(self) -> dict[str, int]:
        """The table's data files, relative to its root, with their sizes in bytes as the log
        gives them (a reader checks them), in the order they were added."""
        ...

    def merge_weights(self) -> dict[str, int]:
        """The data files as ``data_files`` gives them, each with its weight in planning
        merges (``_delta_maintenance``): its size, but for a file a podline merge wrote, the
        bytes its rows take in memory if more. Merges compress what flushes leave
        uncompressed (hashes, to be looked up fast), so a merge of up to the cap came out
        under half of it, which the tiers took for small, and was merged again."""
        ...

    def file_stats(self) -> dict[str, str | None]:
        """The statistics (JSON) the log gives for the data files of a ``direct`` table, by
        the names ``data_files`` gives; a file left out, or None, has none known."""
        ...

    def file_count(self) -> int:
        """How many data files the table has (without reading what ``data_files`` gives)."""
        ...

    def read_files(self) -> None:
        """Read the table's data files if opening it left them unread (``open_log``);
        raises ``UnsupportedTable`` if they are for delta-rs to read."""
        ...

    def direct(self) -> bool:
        """Whether the data files hold exactly the table's rows, to be read as they are."""
        ...

    def update(self) -> None:
        """Move to the table's latest version."""
        ...

    def fork(self) -> TableLog | None:
        """An independent copy at this version, or None where that costs as much as opening
        the table anew."""
        ...

    def delta_table(self) -> DeltaTable:
        """A delta-rs handle at this version (for what only delta-rs does)."""
        ...

    def append(self, rows: pa.Table, schema: pa.Schema, settings: ParquetSettings) -> None:
        """Commit ``rows`` (conformed to ``schema``, the path's schema, which may add columns
        to the table's) as the version after this one, and move to it. Fails if another
        writer committed that version first."""
        ...

    def mergeable(self) -> bool:
        """Whether ``write_merge`` rewrites this table's files (else delta-rs's ``optimize``
        does)."""
        ...

    def write_merge(
        self, bins: list[list[str]], settings: ParquetSettings, row_group_rows: int
    ) -> Merge:
        """Write each of ``bins`` (data files as ``data_files`` names them) as one file
        holding their rows in the order ``data_files`` gives them, in row groups of at most
        ``row_group_rows``, for ``commit_merge`` to commit; nothing is left behind if it
        fails. Reads only data files, so the merge may be written while others commit."""
        ...

    def commit_merge(self, merge: Merge) -> None:
        """Commit ``merge`` (written on this version or an earlier one of the table) as the
        version after this one, a commit that changes no row, and move to it. Raises
        ``CommitConflict``, and discards the merge, if another writer committed that version
        first, or if since the merge was written the table lost a file it replaces or
        changed its schema."""
        ...


def write_with_delta_rs(
    target: str | DeltaTable,
    rows: pa.Table,
    schema: pa.Schema,
    settings: ParquetSettings,
    *,
    evolve: bool = False,
    storage_options: dict[str, str] | None = None,
    configuration: dict[str, str | None] | None = None,
) -> None:
    """Commit ``rows`` through delta-rs: to the version after the handle ``target``'s, or as
    the first version of a new table at the URI ``target`` (failing if one appeared)."""
    from deltalake import CommitProperties, write_deltalake

    write_deltalake(
        target,
        delta_rows(rows, schema),
        # Given a URI, delta-rs would otherwise append to whatever table it finds, unchecked.
        mode="error" if isinstance(target, str) else "append",
        schema_mode="merge" if evolve else None,
        storage_options=storage_options,
        # Commit on the version the rows were deduplicated against, or not at all: a
        # rebased commit could add an id another writer has just added.
        commit_properties=CommitProperties(max_commit_retries=0),
        writer_properties=settings.for_delta_rs(),
        configuration=configuration,
    )


# --------------------------------------------------------------------------- delta-rs


class DeltaRsLog:
    """A table read through delta-rs: object stores, and tables ``LocalLog`` leaves alone."""

    __slots__ = ("table", "uri")

    def __init__(self, table: DeltaTable) -> None:
        self.table = table
        self.uri = table.table_uri
        self._check_readable()

    def _check_readable(self) -> None:
        # delta-rs's Arrow dataset, which podline reads such tables through, reads every
        # column of a column-mapping table as nulls (delta-rs 1.x): refused, not misread.
        mode = self.table.metadata().configuration.get("delta.columnMapping.mode") or "none"
        if mode != "none":
            raise StoreError(
                f"the Delta table at {self.uri} (version {self.table.version()}) uses column "
                f"mapping ({mode!r} mode), which podline cannot read or write"
            )

    def version(self) -> int:
        return self.table.version()

    def schema(self) -> pa.Schema:
        return pa.schema(self.table.schema().to_arrow())

    def data_files(self) -> dict[str, int]:
        added = pa.table(self.table.get_add_actions(flatten=False))
        times = added.column("modification_time").to_pylist()
        paths = added.column("path").to_pylist()
        sizes = added.column("size_bytes").to_pylist()
        where = f"version {self.version()} of the Delta table at {self.uri}"
        return {
            data_file(paths[i], where): sizes[i]
            for i in sorted(range(len(paths)), key=times.__getitem__)
        }

    def merge_weights(self) -> dict[str, int]:
        return self.data_files()  # delta-rs's merges tag nothing

    def file_stats(self) -> dict[str, str | None]:
        return {}  # not direct: delta-rs skips files by their statistics itself

    def file_count(self) -> int:
        return len(self.data_files())

    def read_files(self) -> None:
        pass  # delta-rs has read them

    def direct(self) -> bool:
        return False

    def update(self) -> None:
        self.table.update_incremental()
        self._check_readable()

    def fork(self) -> TableLog | None:
        return None  # a delta-rs handle is not to be shared; opening one is the way

    def delta_table(self) -> DeltaTable:
        return self.table

    def append(self, rows: pa.Table, schema: pa.Schema, settings: ParquetSettings) -> None:
        evolve = len(schema) > len(self.schema())
        write_with_delta_rs(self.table, rows, schema, settings, evolve=evolve)

    def mergeable(self) -> bool:
        return False  # delta-rs's optimize merges what delta-rs reads

    def write_merge(
        self, bins: list[list[str]], settings: ParquetSettings, row_group_rows: int
    ) -> Merge:
        raise UnsupportedTable("delta-rs merges this table's files (see mergeable)")

    def commit_merge(self, merge: Merge) -> None:
        raise UnsupportedTable("delta-rs merges this table's files (see mergeable)")


def all_fields(schema: pa.Schema) -> Iterator[pa.Field]:
    """Every field of ``schema``, nested ones included."""

    def walk(f: pa.Field) -> Iterator[pa.Field]:
        yield f
        t = f.type
        for i in range(t.num_fields):
            yield from walk(t.field(i))

    for f in schema:
        yield from walk(f)


def local_filesystem(root: str) -> pafs.FileSystem:
    """A file system rooted at a local table's directory, for reading its data files."""
    return pafs.SubTreeFileSystem(root, pafs.LocalFileSystem())
