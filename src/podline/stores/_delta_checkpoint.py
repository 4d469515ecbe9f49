"""Delta checkpoints: reading their Parquet files, writing them, and the expired-log cleanup
that follows a checkpoint.

Reading: every action a checkpoint holds, checked (``checkpoint_rows`` with
``_delta_actions.checkpoint_actions``), or only the protocol, the metadata and the paths of
the data files (``checkpoint_metadata``), which is what appending to a table needs and costs
half as much to read.

Writing (``write_checkpoint``, ``cleanup_expired_logs``): what delta-rs does after every
``delta.checkpointInterval``-th commit, for the plain tables podline commits to itself.
In a fresh process delta-rs took 32-37 ms of CPU for it, importing deltalake and opening the
table in it included, once every ten runs for a table that gains a commit per run (as the
run records do); this takes 2.6-3.1 ms. The file has the schema, the actions and the
``_last_checkpoint`` hint delta-rs writes (``tests/stores/test_delta_checkpoint.py`` compares
the two), and is made durable before anything names it. It only writes what podline's log
reader keeps: the table's files, metadata and protocol, so a table with other actions a
checkpoint carries (``CARRIED``) or with removed files a checkpoint must keep is left to
delta-rs (``_delta_local.LocalLog``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from podline.errors import StoreError
from podline.stores._delta_actions import CARRIED, Action, checkpoint_actions
from podline.stores._delta_format import WRITE_CHECKSUMS, UnsupportedTable
from podline.stores._delta_publish import staged_name
from podline.stores._durable import sync_dir, sync_file

__all__ = [
    "CHECKPOINT_SCHEMA",
    "carries_other_actions",
    "checkpoint_metadata",
    "checkpoint_rows",
    "cleanup_expired_logs",
    "hinted_version",
    "write_checkpoint",
]


def _map(values_required: bool) -> pa.MapType:
    return pa.map_(
        pa.field("key", pa.string(), nullable=False),
        pa.field("value", pa.string(), nullable=not values_required),
    )


def _fields(*fields: tuple[str, pa.DataType, bool]) -> pa.StructType:
    return pa.struct([pa.field(name, kind, nullable=nullable) for name, kind, nullable in fields])


_STRINGS = _map(values_required=False)
_DELETION_VECTOR = _fields(
    ("storageType", pa.string(), False),
    ("pathOrInlineDv", pa.string(), False),
    ("offset", pa.int32(), True),
    ("sizeInBytes", pa.int32(), False),
    ("cardinality", pa.int64(), False),
)
_FEATURES = pa.list_(pa.field("element", pa.string(), nullable=False))
#: The schema of the checkpoints delta-rs writes (1.x, through delta-kernel), column for
#: column: readers find actions by these names and types.
CHECKPOINT_SCHEMA = pa.schema(
    [
        pa.field(
            "add",
            _fields(
                ("path", pa.string(), False),
                ("partitionValues", _STRINGS, False),
                ("size", pa.int64(), False),
                ("modificationTime", pa.int64(), False),
                ("dataChange", pa.bool_(), False),
                ("stats", pa.string(), True),
                ("tags", _STRINGS, True),
                ("deletionVector", _DELETION_VECTOR, True),
                ("baseRowId", pa.int64(), True),
                ("defaultRowCommitVersion", pa.int64(), True),
                ("clusteringProvider", pa.string(), True),
            ),
        ),
        pa.field(
            "remove",
            _fields(
                ("path", pa.string(), False),
                ("deletionTimestamp", pa.int64(), True),
                ("dataChange", pa.bool_(), False),
                ("extendedFileMetadata", pa.bool_(), True),
                ("partitionValues", _STRINGS, True),
                ("size", pa.int64(), True),
                ("stats", pa.string(), True),
                ("tags", _STRINGS, True),
                ("deletionVector", _DELETION_VECTOR, True),
                ("baseRowId", pa.int64(), True),
                ("defaultRowCommitVersion", pa.int64(), True),
            ),
        ),
        pa.field(
            "metaData",
            _fields(
                ("id", pa.string(), False),
                ("name", pa.string(), True),
                ("description", pa.string(), True),
                (
                    "format",
                    _fields(("provider", pa.string(), False), ("options", _map(True), False)),
                    False,
                ),
                ("schemaString", pa.string(), False),
                ("partitionColumns", _FEATURES, False),
                ("createdTime", pa.int64(), True),
                ("configuration", _map(True), False),
            ),
        ),
        pa.field(
            "protocol",
            _fields(
                ("minReaderVersion", pa.int32(), False),
                ("minWriterVersion", pa.int32(), False),
                ("readerFeatures", _FEATURES, True),
                ("writerFeatures", _FEATURES, True),
            ),
        ),
        pa.field(
            "txn",
            _fields(
                ("appId", pa.string(), False),
                ("version", pa.int64(), False),
                ("lastUpdated", pa.int64(), True),
            ),
        ),
        pa.field(
            "domainMetadata",
            _fields(
                ("domain", pa.string(), False),
                ("configuration", pa.string(), False),
                ("removed", pa.bool_(), False),
            ),
        ),
        pa.field(
            "sidecar",
            _fields(
                ("path", pa.string(), False),
                ("sizeInBytes", pa.int64(), False),
                ("modificationTime", pa.int64(), False),
                ("tags", _STRINGS, True),
            ),
        ),
    ]
)
#: The log entries an expired-log cleanup may delete, and the checkpoints it keeps one of
#: (the patterns delta-rs matches, on the name within ``_delta_log``).
_LOG_ENTRY = re.compile(r"(\d{20})\.(json|checkpoint(\.\d+)?\.parquet)$")
_ANY_CHECKPOINT = re.compile(r"(\d{20})\.checkpoint")

#: The columns of a checkpoint ``checkpoint_metadata`` reads.
_METADATA_COLUMNS = ("metaData", "protocol", "add.path")
_METADATA = ("metaData", "protocol")


def checkpoint_rows(path: Path, where: str) -> pa.Table:
    """Every column of the checkpoint file at ``path`` (``where`` names it in errors). Every
    one, not only those a read needs: damage to any of them makes delta-rs refuse the table.
    Raises ``FileNotFoundError`` if it is gone (a log cleanup may have deleted it)."""
    try:
        # A ParquetFile, not ``pq.read_table``: that loads Arrow's dataset engine (and
        # pandas), 200 ms in a fresh process.
        with pq.ParquetFile(path, page_checksum_verification=True) as file:
            return file.read()
    except FileNotFoundError:
        raise
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: a name not UTF-8
        raise StoreError(f"{where} cannot be read: {exc}") from exc


def checkpoint_metadata(path: Path, where: str) -> tuple[list[Action], list[str]] | None:
    """The ``metaData`` and ``protocol`` actions of the checkpoint file at ``path``, checked,
    and the paths its ``add`` actions name, as the log gives them (unchecked: they are checked
    when the file is read whole); None for a file not read so simply (its whole is then read,
    and checked, by the caller). Raises ``FileNotFoundError`` if it is gone."""
    try:
        # (A few columns of a small file: read at once, without threads.)
        with pq.ParquetFile(path, pre_buffer=False, page_checksum_verification=True) as file:
            rows = file.read(columns=list(_METADATA_COLUMNS), use_threads=False)
        actions = list(checkpoint_actions(rows, where, _METADATA))
        paths = pc.struct_field(rows["add"], "path").drop_null().to_pylist()
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, pa.ArrowException, UnsupportedTable, StoreError):
        return None
    return actions, paths


def carries_other_actions(rows: pa.Table) -> bool:
    """Whether checkpoint ``rows`` hold any of the ``CARRIED`` actions."""
    return any(
        name in rows.column_names and rows.column(name).null_count < rows.num_rows
        for name in CARRIED
    )


def write_checkpoint(
    log: Path,
    version: int,
    protocol: dict[str, Any],
    metadata: dict[str, Any],
    adds: Iterable[dict[str, Any]],
) -> None:
    """Write the checkpoint of version ``version`` of the table whose ``_delta_log`` is
    ``log``: its ``protocol``, ``metadata`` and data files (``adds``, the ``add`` actions
    that added them, in the order delta-rs lists them), then point ``_last_checkpoint`` at
    it unless it names a newer one already. Each file is synced before it is renamed into
    place, so a reader that finds one finds it whole."""
    rows: list[dict[str, Any]] = [{"add": add} for add in adds]
    files = len(rows)
    rows += [{"protocol": protocol}, {"metaData": metadata}]
    table = pa.Table.from_pylist(rows, CHECKPOINT_SCHEMA)
    checkpoint = log / f"{version:020d}.checkpoint.parquet"
    # As delta-rs writes them: uncompressed (they are small and read whole), and without
    # Arrow's copy of the schema in the footer (which made it 70% larger, and a read of the
    # metadata a third slower).
    _renamed_into_place(
        checkpoint,
        lambda path: pq.write_table(
            table, path, compression="NONE", store_schema=False, **WRITE_CHECKSUMS
        ),
    )
    hint = {
        "version": version,
        "size": table.num_rows,
        "sizeInBytes": checkpoint.stat().st_size,
        "numOfAddFiles": files,
    }
    text = json.dumps(hint, separators=(",", ":")).encode()
    # A writer that fell behind (another process committed and checkpointed since) leaves
    # a newer hint alone; delta-rs would replace it.
    hinted = hinted_version(log)
    if hinted is None or hinted < version:
        _renamed_into_place(log / "_last_checkpoint", lambda path: path.write_bytes(text))
    sync_dir(log)


def hinted_version(log: str | Path) -> int | None:
    """The version the ``_last_checkpoint`` hint of the log directory ``log`` names; None if
    it is missing or names none that can be read."""
    try:
        with open(os.path.join(log, "_last_checkpoint"), "rb") as file:
            hint = json.loads(file.read())
    except (OSError, ValueError):
        return None
    version = hint.get("version") if isinstance(hint, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _renamed_into_place(path: Path, write: Callable[[Path], object]) -> None:
    """Have ``write`` write the file ``path`` under a temporary name beside it, flush it to
    storage, and rename it to ``path`` (replacing any file there)."""
    staged = staged_name(path)
    try:
        write(staged)
        sync_file(staged)
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def cleanup_expired_logs(log: Path, keep_version: int, cutoff_ms: int) -> int:
    """Delete the log entries (commits and checkpoints) of ``log`` that no reader of a
    version at or after ``keep_version``, nor of one committed at or after ``cutoff_ms``
    (milliseconds since the epoch), needs: those before the newest checkpoint such a reader
    may start from, and last modified by ``cutoff_ms``. delta-rs's rule, for the same files
    (``cleanup_expired_logs_for``); returns how many were deleted."""
    listed = list(os.scandir(log))
    entries: list[tuple[str, int, int]] = []
    for entry in listed:
        match = _LOG_ENTRY.search(entry.name)
        if match is None:
            continue
        try:
            modified = entry.stat().st_mtime_ns // 1_000_000
        except FileNotFoundError:  # deleted meanwhile (another cleanup)
            continue
        entries.append((entry.name, int(match.group(1)), modified))
    retained = [at for _, at, modified in entries if modified >= cutoff_ms]
    keep_version = min(keep_version, min(retained, default=keep_version))
    checkpoints = [
        int(match.group(1))
        for match in (_ANY_CHECKPOINT.match(entry.name) for entry in listed)
        if match is not None
    ]
    safe = max((at for at in checkpoints if at <= keep_version), default=None)
    if safe is None:
        return 0
    deleted = 0
    for name, at, modified in entries:
        if at < safe and modified <= cutoff_ms:
            try:
                (log / name).unlink()
            except FileNotFoundError:
                continue
            deleted += 1
    return deleted
