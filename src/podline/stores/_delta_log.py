"""What a ``DeltaStore`` knows of one Delta table at one version: ``TableLog``.

delta-rs costs milliseconds of fixed work per table opened and per commit (3-9 ms to open a
table, 5-12 ms to append three rows), which is most of a small cached run. Plain local tables
(the ones podline writes: unpartitioned, no deletion vectors, no column mapping) are simple
enough to read and append to directly, as the Delta protocol lays them out:

- ``LocalLog`` replays the table's ``_delta_log`` (its latest checkpoint, then the JSON
  commits after it; a short log, all of its JSON commits) for the version, the data files in
  the order they were added and the schema; an update reads only the commits added since.
- ``LocalLog.append`` writes one Parquet file with pyarrow and commits it as the next log
  entry, created with a hard link so it either appears whole or, when another writer took
  that version, not at all (the put-if-absent rule every Delta writer relies on). Every
  ``delta.checkpointInterval`` commits it has delta-rs write a checkpoint, as delta-rs would.
  ``LocalLog.create`` makes a new table the same way, as delta-rs would make it.

Anything else goes through delta-rs (``DeltaRsLog``, ``write_with_delta_rs``): object stores,
tables with features this reader does not interpret (``UnsupportedTable``), columns whose
type delta-rs converts on the way in, schema changes, and compaction.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from podline.errors import StoreError
from podline.stores._delta_format import (
    ParquetSettings,
    UnsupportedTable,
    arrow_field,
    delta_field,
    delta_schema,
)

if TYPE_CHECKING:
    # Loaded only when delta-rs does the work: a run on plain local tables never needs it,
    # and it costs some 40 ms and 16-33 MB of mapped code to load.
    from deltalake import DeltaTable

__all__ = [
    "CommitConflict",
    "DeltaRsLog",
    "LocalLog",
    "TableLog",
    "UnsupportedTable",
    "has_log",
    "local_filesystem",
    "open_log",
    "write_with_delta_rs",
]

_COMMIT = re.compile(r"(\d{20})\.json")
_CHECKPOINT = re.compile(r"(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet")
#: The default of ``delta.checkpointInterval``.
_CHECKPOINT_INTERVAL = 100
#: A log whose latest checkpoint is at a version below this is replayed from its first
#: commit, when all of its commits are there (see ``LocalLog.load``).
_REPLAY_RATHER = 100
#: Reader features that change nothing about reading plain Parquet files.
_PLAIN_READER_FEATURES = frozenset({"timestampNtz"})
_CLIENT = "podline"
#: What ``os.link`` fails with where a file system has no hard links.
_NO_LINKS = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV, errno.EINVAL}
)

_log = logging.getLogger(__name__)


class CommitConflict(Exception):  # noqa: N818 - the optimistic protocol's ordinary outcome
    """Another writer committed the version an append was made for."""


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

    def data_files(self) -> list[str]:
        """The table's data files, relative to its root, in the order they were added."""
        ...

    def direct(self) -> bool:
        """Whether the data files hold exactly the table's rows, to be read as they are."""
        ...

    def update(self) -> None:
        """Move to the table's latest version."""
        ...

    def delta_table(self) -> DeltaTable:
        """A delta-rs handle at this version (for what only delta-rs does)."""
        ...

    def append(self, rows: pa.Table, schema: pa.Schema, settings: ParquetSettings) -> None:
        """Commit ``rows`` (conformed to ``schema``, the path's schema, which may add columns
        to the table's) as the version after this one, and move to it. Fails if another
        writer committed that version first."""
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
        # Same columns, annotated schema: a cast would re-check nullability (see conform).
        pa.Table.from_arrays(rows.columns, schema=delta_schema(schema)),
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

    def version(self) -> int:
        return self.table.version()

    def schema(self) -> pa.Schema:
        return pa.schema(self.table.schema().to_arrow())

    def data_files(self) -> list[str]:
        added = pa.table(self.table.get_add_actions(flatten=False))
        times = added.column("modification_time").to_pylist()
        paths = added.column("path").to_pylist()
        outside = sorted(p for p in paths if "://" in p)
        if outside:
            raise StoreError(f"data file {outside[0]} lies outside its table {self.uri}")
        return [unquote(paths[i]) for i in sorted(range(len(paths)), key=times.__getitem__)]

    def direct(self) -> bool:
        return False

    def update(self) -> None:
        self.table.update_incremental()

    def delta_table(self) -> DeltaTable:
        return self.table

    def append(self, rows: pa.Table, schema: pa.Schema, settings: ParquetSettings) -> None:
        evolve = len(schema) > len(self.schema())
        write_with_delta_rs(self.table, rows, schema, settings, evolve=evolve)


# --------------------------------------------------------------------------- local log


def open_log(
    uri: str,
    *,
    local: bool,
    storage_options: dict[str, str] | None = None,
    version: int | None = None,
) -> TableLog | None:
    """The log of the table at ``uri`` (at ``version``; default: the latest), or None while no
    table is there: podline's own for a plain ``local`` table, delta-rs's otherwise."""
    if local:
        with contextlib.suppress(UnsupportedTable):
            return LocalLog.load(uri, version)
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaRsLog(DeltaTable(uri, version=version, storage_options=storage_options))
    except TableNotFoundError:
        return None


def has_log(uri: str) -> bool:
    """Whether a local Delta table exists at ``uri``: its log holds a commit or checkpoint."""
    try:
        names = os.listdir(Path(uri, "_delta_log"))
    except (FileNotFoundError, NotADirectoryError):
        return False
    return any(_COMMIT.fullmatch(n) or _CHECKPOINT.fullmatch(n) for n in names)


class LocalLog:
    """A plain local Delta table, read from its log by podline (see the module docs)."""

    __slots__ = (
        "_files",
        "_links",
        "_schema",
        "_sequence",
        "_table",
        "_version",
        "metadata",
        "protocol",
        "uri",
    )

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._version = -1
        # Data file (as the log names it, escaped) -> (modification time, order added).
        self._files: dict[str, tuple[int, int]] = {}
        self._sequence = 0
        self.metadata: dict[str, Any] = {}
        self.protocol: dict[str, Any] = {}
        self._schema: pa.Schema | None = None
        self._table: DeltaTable | None = None
        #: False once hard links failed here (see ``_commit_rows``).
        self._links = True

    @property
    def _log(self) -> Path:
        return Path(self.uri, "_delta_log")

    @classmethod
    def load(cls, uri: str, version: int | None = None) -> LocalLog | None:
        """The table at ``uri`` at ``version`` (default: its latest), or None if there is no
        table there. Raises ``UnsupportedTable`` for a table delta-rs must read."""
        log = cls(uri)
        try:
            names = os.listdir(log._log)
        except (FileNotFoundError, NotADirectoryError):
            return None
        commits = {int(m[1]) for n in names if (m := _COMMIT.fullmatch(n))}
        parts: dict[int, set[str]] = {}
        counts: dict[int, int] = {}
        for name in names:
            m = _CHECKPOINT.fullmatch(name)
            if m:
                at = int(m[1])
                parts.setdefault(at, set()).add(name)
                counts[at] = int(m[3] or 1)
        checkpoints = {at for at, found in parts.items() if len(found) == counts[at]}
        known = commits | checkpoints
        if not known:
            return None
        target = max(known) if version is None else version
        start = max((at for at in checkpoints if at <= target), default=-1)
        if start < _REPLAY_RATHER and all(at in commits for at in range(start + 1)):
            # A checkpoint's nested Parquet takes 2-4 ms to read in a fresh process, a
            # commit's JSON some 20 µs: a short log is replayed from its first commit.
            start = -1
        if start >= 0:
            log._replay_checkpoint(start, sorted(parts[start]))
        for at in range(start + 1, target + 1):
            if at not in commits:
                raise UnsupportedTable(f"commit {at} is missing from the log")
            log._replay_commit(at)
        return log

    def version(self) -> int:
        return self._version

    def schema(self) -> pa.Schema:
        assert self._schema is not None  # every table's log starts with its metadata
        return self._schema

    def data_files(self) -> list[str]:
        order = sorted(self._files.items(), key=lambda item: item[1])
        return [unquote(name) for name, _ in order]

    def direct(self) -> bool:
        return True

    def update(self, until: int | None = None) -> None:
        """Read the commits after this version (up to ``until``, if given)."""
        while until is None or self._version < until:
            try:
                self._replay_commit(self._version + 1)
            except FileNotFoundError:
                if until is not None:
                    raise
                return

    def delta_table(self) -> DeltaTable:
        from deltalake import DeltaTable

        if self._table is None or self._table.version() != self._version:
            self._table = DeltaTable(self.uri, version=self._version)
        return self._table

    # -- replay

    def _replay_checkpoint(self, at: int, names: list[str]) -> None:
        for name in names:
            # A ParquetFile, not ``pq.read_table``: that loads Arrow's dataset engine (and
            # pandas), 200 ms in a fresh process.
            with pq.ParquetFile(self._log / name) as file:
                actions = file.read(columns=["add", "metaData", "protocol"])
            for added in actions.column("add").drop_null().to_pylist():
                self._add(added)
            for metadata in actions.column("metaData").drop_null().to_pylist():
                self._set_metadata(metadata)
            for protocol in actions.column("protocol").drop_null().to_pylist():
                self._set_protocol(protocol)
        self._version = at

    def _replay_commit(self, at: int) -> None:
        with open(self._log / f"{at:020d}.json", "rb") as file:
            lines = file.read().splitlines()
        for line in lines:
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                self._add(action["add"])
            elif "remove" in action:
                self._files.pop(action["remove"]["path"], None)
            elif "metaData" in action:
                self._set_metadata(action["metaData"])
            elif "protocol" in action:
                self._set_protocol(action["protocol"])
        self._version = at

    def _add(self, added: dict[str, Any]) -> None:
        if added.get("deletionVector") or "://" in added["path"] or added.get("partitionValues"):
            raise UnsupportedTable(f"data file {added['path']} is not plain Parquet")
        self._sequence += 1
        self._files[added["path"]] = (int(added["modificationTime"]), self._sequence)

    def _set_metadata(self, metadata: dict[str, Any]) -> None:
        if metadata.get("partitionColumns"):
            raise UnsupportedTable("the table is partitioned")
        # A checkpoint stores a map as key-value pairs; a writer may leave it out.
        configuration = dict(metadata.get("configuration") or {})
        self.metadata = {**metadata, "configuration": configuration}
        fields = json.loads(metadata["schemaString"])["fields"]
        self._schema = pa.schema([arrow_field(f) for f in fields])

    def _set_protocol(self, protocol: dict[str, Any]) -> None:
        reader = protocol.get("minReaderVersion", 1)
        features = set(protocol.get("readerFeatures") or ())
        if reader == 2 or (reader >= 3 and not features <= _PLAIN_READER_FEATURES):
            raise UnsupportedTable(f"reader protocol {reader} {sorted(features)}")
        self.protocol = protocol

    # -- appending

    def appendable(self, schema: pa.Schema) -> bool:
        """Whether ``append`` may add rows of ``schema``: the table's schema, unchanged, with
        no constraint, invariant, generated column or exact-type annotation a writer must
        honour, under a writer protocol that asks nothing more of an append."""
        if not self._links or self.protocol.get("minWriterVersion", 2) > 2:
            return False
        if not schema.equals(self.schema()):
            return False
        return not any(f.metadata for f in _fields(self.schema()))

    def append(self, rows: pa.Table, schema: pa.Schema, settings: ParquetSettings) -> None:
        if self.appendable(schema):
            try:
                self._commit_rows(rows, schema, settings, mode="Append")
            except UnsupportedTable:  # no hard links here: delta-rs commits from now on
                self._links = False
            else:
                configuration = self.metadata["configuration"]
                interval = int(
                    configuration.get("delta.checkpointInterval") or _CHECKPOINT_INTERVAL
                )
                if (self._version + 1) % interval == 0:  # as delta-rs counts
                    self._checkpoint(configuration)
                return
        evolve = len(schema) > len(self.schema())
        write_with_delta_rs(self.delta_table(), rows, schema, settings, evolve=evolve)
        self.update(until=self._version + 1)

    def _checkpoint(self, configuration: dict[str, str]) -> None:
        """Have delta-rs write a checkpoint at this version and, as its own commits would,
        delete log entries older than ``delta.logRetentionDuration`` (30 days by default)."""
        try:
            table = self.delta_table()
            table.create_checkpoint()
            if (configuration.get("delta.enableExpiredLogCleanup") or "true").lower() == "true":
                table.cleanup_metadata()
        except Exception as exc:  # the commit stands; readers replay a few more entries
            _log.warning("checkpoint of %s at version %d failed: %s", self.uri, self._version, exc)

    @classmethod
    def create(
        cls,
        uri: str,
        rows: pa.Table,
        schema: pa.Schema,
        settings: ParquetSettings,
        configuration: dict[str, str | None],
    ) -> LocalLog | None:
        """Create the table at ``uri`` with ``rows`` (conformed to ``schema``) as version 0, as
        delta-rs would (protocol 1/2); raises ``CommitConflict`` if another writer created it
        first. None (and nothing written) if a column's type is one delta-rs converts."""
        try:
            fields = [delta_field(f) for f in schema]
        except UnsupportedTable:
            return None
        log = cls(uri)
        log._log.mkdir(parents=True, exist_ok=True)
        metadata = {
            "id": str(uuid.uuid4()),
            "format": {"provider": "parquet", "options": {}},
            "schemaString": json.dumps({"type": "struct", "fields": fields}),
            "partitionColumns": [],
            "createdTime": time.time_ns() // 1_000_000,
            "configuration": configuration,
        }
        protocol = {"minReaderVersion": 1, "minWriterVersion": 2}
        log._set_protocol(protocol)
        log._set_metadata(metadata)
        try:
            log._commit_rows(
                rows,
                schema,
                settings,
                mode="ErrorIfExists",
                first=[{"protocol": protocol}, {"metaData": metadata}],
            )
        except UnsupportedTable:  # no hard links here
            return None
        return log

    def _commit_rows(
        self,
        rows: pa.Table,
        schema: pa.Schema,
        settings: ParquetSettings,
        *,
        mode: str,
        first: list[dict[str, Any]] | None = None,
    ) -> None:
        """Write ``rows`` as one data file and commit it as the next version, after the
        actions ``first``."""
        name = f"part-00000-{uuid.uuid4()}-c000.parquet"
        data = Path(self.uri, name)
        pq.write_table(rows, data, **settings.for_pyarrow(schema))
        now = time.time_ns() // 1_000_000
        added = {
            "path": quote(name),
            "partitionValues": {},
            "size": data.stat().st_size,
            "modificationTime": now,
            "dataChange": True,
            "stats": json.dumps(_stats(rows), separators=(",", ":")),
        }
        info = {
            "timestamp": now,
            "operation": "WRITE",
            "operationParameters": {"mode": mode},
            "clientVersion": _CLIENT,
        }
        actions = [{"commitInfo": info}, *(first or ()), {"add": added}]
        at = self._version + 1
        temporary = self._log / f"_commit_{uuid.uuid4()}.json.tmp"
        temporary.write_text("".join(json.dumps(a) + "\n" for a in actions))
        try:
            os.link(temporary, self._log / f"{at:020d}.json")
        except FileExistsError:
            data.unlink(missing_ok=True)  # no commit refers to it
            raise CommitConflict(
                f"version {at} of {self.uri} was committed by another writer"
            ) from None
        except OSError as exc:
            data.unlink(missing_ok=True)
            if exc.errno not in _NO_LINKS:
                raise
            # A file system without hard links (FAT, some network shares): without them no
            # commit is safe from a concurrent one, so delta-rs, which knows others, commits.
            raise UnsupportedTable(f"no hard links in {self.uri}: {exc}") from exc
        finally:
            temporary.unlink(missing_ok=True)
        self._add(added)
        self._version = at


def _fields(schema: pa.Schema) -> Iterator[pa.Field]:
    """Every field of ``schema``, nested ones included."""

    def walk(f: pa.Field) -> Iterator[pa.Field]:
        yield f
        t = f.type
        for i in range(t.num_fields):
            yield from walk(t.field(i))

    for f in schema:
        yield from walk(f)


def _stats(rows: pa.Table) -> dict[str, Any]:
    """Delta file statistics: the row count, nulls per top-level column, and the bounds of
    integer and string columns (the ones compared the same way by every engine; readers treat
    a column without bounds as unknown)."""
    nulls: dict[str, int] = {}
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    for f in rows.schema:
        if pa.types.is_nested(f.type):
            continue
        column = rows.column(f.name)
        nulls[f.name] = column.null_count
        bounded = pa.types.is_integer(f.type) or pa.types.is_large_string(f.type)
        if bounded and column.null_count < len(column):
            bounds = pc.min_max(column)
            low[f.name] = bounds["min"].as_py()
            high[f.name] = bounds["max"].as_py()
    return {"numRecords": rows.num_rows, "minValues": low, "maxValues": high, "nullCount": nulls}


def local_filesystem(root: str) -> pafs.FileSystem:
    """A file system rooted at a local table's directory, for reading its data files."""
    return pafs.SubTreeFileSystem(root, pafs.LocalFileSystem())
