"""podline's own reading of and appending to a plain local Delta table: ``LocalLog``, and
``open_log``, which gives it where it can read a table and delta-rs's log elsewhere.

Plain local tables (the ones podline writes: unpartitioned, no deletion vectors, no column
mapping) are simple enough to read and append to directly, as the Delta protocol lays them
out:

- ``LocalLog`` replays the table's ``_delta_log`` (its latest checkpoint, then the JSON
  commits after it; a short log, all of its JSON commits) for the version, the data files in
  the order they were added and the schema; an update reads only the commits added since,
  or the table again from its newest checkpoint once a log cleanup deleted the next commit.
  Every entry is checked before it is believed (``_delta_actions``): what delta-rs refuses
  is refused, and what podline is not sure of is delta-rs's to read.
- ``LocalLog.append`` writes one Parquet file with pyarrow and commits it as the next log
  entry, created with a hard link so it either appears whole or, when another writer took
  that version, not at all (the put-if-absent rule every Delta writer relies on); an entry
  that landed below a checkpoint, on a version a log cleanup freed, is withdrawn. Every
  ``delta.checkpointInterval`` commits it writes a checkpoint and cleans up expired log
  entries, as delta-rs would (``_delta_checkpoint``; delta-rs does it for a table holding
  what podline's checkpoint would not carry: ``_own_checkpoints``).
  ``LocalLog.create`` makes a new table as delta-rs would make it, its log directory renamed
  into place with its first commit in it, so no reader sees a table without one. What an
  entry refers to, and the entry, are synced to disk before it is published (``_durable``).
- ``LocalLog.write_merge`` and ``commit_merge`` compact: the first rewrites groups of data
  files as one file each, their rows in the order the files were added; the second commits
  that as delta-rs commits an ``optimize`` (the files removed and added, ``dataChange``
  false), published as an append is, on the table's latest version as long as the table
  still holds every file merged (so a store writes a merge while it goes on appending). A merged
  file takes its oldest source's ``modificationTime``, so that it stands where its sources
  stood in the order readers take files in (``data_files``). delta-rs's own ``optimize``
  writes a merged file's sources newest first (as of deltalake 1.6), and cannot be told
  otherwise; a run that reads a node's records in step with its input (``nodes.streamed``)
  then had to read ahead, and hold, up to a merged file's rows.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from podline.conversion import regrouped
from podline.errors import StoreError
from podline.stores._common import conform
from podline.stores._delta_actions import (
    CARRIED,
    checkpoint_actions,
    commit_actions,
    data_file,
    list_log,
    readable_protocol,
    schema_fields,
)
from podline.stores._delta_checkpoint import (
    carries_other_actions,
    checkpoint_metadata,
    checkpoint_rows,
    cleanup_expired_logs,
    hinted_version,
    write_checkpoint,
)
from podline.stores._delta_format import (
    ParquetSettings,
    UnsupportedTable,
    arrow_field,
    delta_field,
    read_row_groups,
)
from podline.stores._delta_log import (
    CommitConflict,
    DeltaRsLog,
    Merge,
    TableLog,
    all_fields,
    local_filesystem,
    write_with_delta_rs,
)
from podline.stores._delta_publish import create_log, has_log, link_entry
from podline.stores._delta_stats import file_stats, merged_stats
from podline.stores._durable import Syncing, make_dirs, sync_dir

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = ["MERGED_TAG", "LocalLog", "has_log", "open_log"]  # has_log: see _delta_publish

#: The tag (of an ``add`` action) of a file a podline merge wrote: the bytes its rows took in
#: memory (Arrow's ``nbytes``), its weight in planning merges if more than its size
#: (``LocalLog.merge_weights``).
MERGED_TAG = "podline.rowBytes"

#: The default of ``delta.checkpointInterval``.
_CHECKPOINT_INTERVAL = 100
_CLIENT = "podline"
#: More than the coarsest clock tick file times are taken from.
_CLOCK_TICK_NS = 100_000_000
#: Table settings that change nothing a checkpoint holds (see ``LocalLog._own_checkpoints``).
_CHECKPOINT_NEUTRAL = frozenset(
    {
        "delta.checkpointInterval",
        "delta.deletedFileRetentionDuration",
        "delta.logRetentionDuration",
        "delta.enableExpiredLogCleanup",
        "delta.appendOnly",
    }
)
#: ``delta.logRetentionDuration`` when the table does not set it.
_LOG_RETENTION = "interval 30 days"
#: Nanoseconds a unit of a Delta interval setting (``interval 30 days``) stands for.
_INTERVAL_UNITS_NS = {
    unit: ns
    for name, ns in {
        "nanosecond": 1,
        "microsecond": 1_000,
        "millisecond": 1_000_000,
        "second": 1_000_000_000,
        "minute": 60_000_000_000,
        "hour": 3_600_000_000_000,
        "day": 86_400_000_000_000,
        "week": 604_800_000_000_000,
    }.items()
    for unit in (name, f"{name}s")
}
#: How often ``LocalLog.load`` lists a log that a concurrent cleanup changed under it.
_LOAD_ATTEMPTS = 3

_log = logging.getLogger(__name__)


def open_log(
    uri: str,
    *,
    local: bool,
    storage_options: dict[str, str] | None = None,
    version: int | None = None,
    files: bool = True,
) -> TableLog | None:
    """The log of the table at ``uri`` (at ``version``; default: the latest), or None while no
    table is there: podline's own for a plain ``local`` table, delta-rs's otherwise. Without
    ``files``, podline's may leave the data files a checkpoint lists unread until they are
    asked for (see ``LocalLog.load``)."""
    if local:
        with contextlib.suppress(UnsupportedTable):
            return LocalLog.load(uri, version, files=files)
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaRsLog(DeltaTable(uri, version=version, storage_options=storage_options))
    except TableNotFoundError:
        return None


class _Added(NamedTuple):
    """A data file of a ``LocalLog``'s table."""

    #: Its path relative to the table's root (the log's path, decoded).
    name: str
    modified: int
    #: The order it was added in.
    order: int
    #: The version of the commit (or checkpoint) it was read from, or that added it.
    version: int
    size: int
    #: The ``add`` action that added it, as the log gives it (a checkpoint repeats it).
    action: dict[str, Any]
    #: For a file a podline merge wrote, the bytes its rows take in memory (``MERGED_TAG``).
    merged: int | None = None

    @property
    def stats(self) -> str | None:
        """Its statistics (JSON) as the log gives them, if any (``_delta_prune`` reads them)."""
        stats: str | None = self.action.get("stats")
        return stats

    @property
    def weight(self) -> int:
        """Its weight in planning merges (see ``LocalLog.merge_weights``)."""
        return self.size if self.merged is None else max(self.size, self.merged)


class _Unread(NamedTuple):
    """A checkpoint whose data files a ``LocalLog`` has not read (see ``LocalLog.load``)."""

    version: int
    names: list[str]
    #: The paths its ``add`` actions name, as the log gives them.
    paths: frozenset[str]
    #: Paths that commits after it removed.
    removed: frozenset[str] = frozenset()


class LocalLog:
    """A plain local Delta table, read from its log by podline (see the module docs)."""

    __slots__ = (
        "_carried",
        "_directory",
        "_files",
        "_links",
        "_listed",
        "_quiet",
        "_schema",
        "_sequence",
        "_table",
        "_unread",
        "_version",
        "metadata",
        "protocol",
        "uri",
    )

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._directory = os.path.join(uri, "_delta_log")
        #: The log directory's modification time when a listing last found nothing past
        #: this version: ``_quiet`` once that time was well past, ``_listed`` in any case
        #: (see ``_skip_ahead``).
        self._quiet = -1
        self._listed = -1
        self._version = -1
        # Keyed by the path as the log gives it: ``remove`` actions match it as written.
        # Those of a checkpoint not read yet (``_unread``) are not in it.
        self._files: dict[str, _Added] = {}
        self._unread: _Unread | None = None
        self._sequence = 0
        self.metadata: dict[str, Any] = {}
        self.protocol: dict[str, Any] = {}
        self._schema: pa.Schema | None = None
        self._table: DeltaTable | None = None
        #: False once hard links failed here (see ``_commit_rows``).
        self._links = True
        #: Whether the table holds actions a checkpoint carries (``CARRIED``) that this
        #: reader skips, as far as it has read (see ``_own_checkpoints``).
        self._carried = False

    @property
    def _log(self) -> Path:
        return Path(self.uri, "_delta_log")

    @classmethod
    def load(cls, uri: str, version: int | None = None, *, files: bool = True) -> LocalLog | None:
        """The table at ``uri`` at ``version`` (default: its latest), or None if there is no
        table there. Raises ``UnsupportedTable`` for a table delta-rs must read.

        Without ``files``, the data files a checkpoint lists are left unread until they are
        asked for (``read_files``): appending needs the version, the protocol and the
        metadata, and those columns of a checkpoint cost half as much to read as all of it.
        """
        for _ in range(_LOAD_ATTEMPTS):
            try:
                return cls._load(uri, version, files)
            except FileNotFoundError:  # a log cleanup deleted an entry while it was read
                continue
        raise UnsupportedTable(f"the log of {uri} kept changing while it was read")

    @classmethod
    def _load(cls, uri: str, version: int | None, files: bool) -> LocalLog | None:
        log = cls(uri)
        try:
            changed = os.stat(log._directory).st_mtime_ns
            listing = list_log(log._directory)
        except (FileNotFoundError, NotADirectoryError):
            return None
        latest = listing.latest()
        if latest < 0:
            return None
        target = latest if version is None else version
        # The checkpoint delta-rs starts from, read even where the commits before it are all
        # there: a damaged one makes delta-rs refuse the table, and so podline (replaying the
        # commits instead read tables delta-rs and polars refused, and wrote to them).
        checkpoint = listing.checkpoint(target)
        start = -1 if checkpoint is None else checkpoint[0]
        hinted = hinted_version(log._directory) if version is None else None
        if hinted is not None and start < hinted:
            # delta-rs (the kernel) looks for a checkpoint from the hint's version on.
            raise UnsupportedTable(
                f"_last_checkpoint names version {hinted}, and the log holds no checkpoint "
                f"from it on (the latest is {'none' if checkpoint is None else start})"
            )
        if checkpoint is not None:
            log._replay_checkpoint(*checkpoint, files=files)
        for at in range(start + 1, target + 1):
            if not listing.has_commit(at):
                raise UnsupportedTable(f"commit {at} is missing from the log")
            log._replay_commit(at)
        if not log.protocol or log._schema is None:
            raise UnsupportedTable("the log names no protocol or no metadata")
        if target == latest:
            log._found_quiet(changed)
        return log

    def _found_quiet(self, changed: int) -> None:
        """A listing of the log directory, modified at ``changed`` before it was listed, found
        nothing past this version (see ``_skip_ahead``)."""
        self._listed = changed
        # Timestamps are as coarse as the kernel's clock tick, so only a time well past is
        # trusted to change with any later entry.
        if time.time_ns() - changed > _CLOCK_TICK_NS:
            self._quiet = changed

    def version(self) -> int:
        return self._version

    def schema(self) -> pa.Schema:
        assert self._schema is not None  # ``load`` checks every table has its metadata
        return self._schema

    def data_files(self) -> dict[str, int]:
        return {added.name: added.size for added in self._in_order()}

    def merge_weights(self) -> dict[str, int]:
        return {added.name: added.weight for added in self._in_order()}

    def _in_order(self) -> list[_Added]:
        """The table's data files in the order they were added (see ``data_files``)."""
        if self._unread is not None:
            try:
                self.read_files()
            except UnsupportedTable as exc:
                raise StoreError(
                    f"cannot read the data files of version {self._version} of the Delta "
                    f"table at {self.uri}: {exc}"
                ) from exc
        return sorted(self._files.values(), key=lambda added: (added.modified, added.order))

    def _replay_order(self) -> list[_Added]:
        """The table's data files in the order delta-rs lists them, and writes them into a
        checkpoint: newest commit first, a commit's in the order it names them, and the
        files of a checkpoint read after those of the commits that followed it, in its
        order."""
        self.data_files()  # reads what a checkpoint left unread
        return sorted(self._files.values(), key=lambda added: (-added.version, added.order))

    def file_stats(self) -> dict[str, str | None]:
        self.data_files()  # reads what a checkpoint left unread
        return {added.name: added.stats for added in self._files.values()}

    def file_count(self) -> int:
        unread = self._unread
        if unread is None:
            return len(self._files)
        return len(unread.paths - unread.removed - self._files.keys()) + len(self._files)

    def read_files(self) -> None:
        """Read the data files of the checkpoint ``load`` left unread, if any. Raises
        ``UnsupportedTable`` if they are ones delta-rs must read, or if that checkpoint was
        deleted meanwhile (by a log cleanup, once newer ones were written)."""
        unread = self._unread
        if unread is None:
            return
        later, sequence = self._files, self._sequence
        self._files, self._sequence = {}, 0
        try:
            for name in unread.names:
                where = f"checkpoint {name} of the Delta table at {self.uri}"
                rows = checkpoint_rows(self._log / name, where)
                self._carried |= carries_other_actions(rows)
                for kind, value in checkpoint_actions(rows, where):
                    if kind == "add" and value["path"] not in unread.removed:
                        self._add(value, where, unread.version)
        except BaseException as exc:
            self._files, self._sequence = later, sequence
            if isinstance(exc, FileNotFoundError):
                raise UnsupportedTable(f"checkpoint {unread.version} was deleted") from None
            raise
        # The files of commits after the checkpoint were added after its own.
        for path, added in sorted(later.items(), key=lambda item: item[1].order):
            self._sequence += 1
            self._files[path] = added._replace(order=self._sequence)
        self._unread = None

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
                if not self._skip_ahead():
                    return

    def _skip_ahead(self) -> bool:
        """Called when the commit after this version is not there: whether the table is past
        this version anyway, and if so move to its latest version from its newest checkpoint.

        A log cleanup (delta-rs's, after a checkpoint) deletes the entries older than the
        checkpoint, so a reader that fell behind finds its next commit gone. Appending on the
        old version would put a commit below the checkpoint, where no reader sees it."""
        # An unchanged directory holds no new entry: a reader that is up to date (the
        # usual case) pays a ``stat``, not a listing.
        try:
            changed = os.stat(self._directory).st_mtime_ns
        except FileNotFoundError:
            raise StoreError(f"the log of the Delta table at {self.uri} was deleted") from None
        if changed == self._quiet or (changed == self._listed and not self._checkpoint_past()):
            return False
        listing = list_log(self._directory)
        if listing.has_commit(self._version + 1):
            return True  # committed since it was looked for
        if listing.latest() <= self._version:
            self._found_quiet(changed)
            return False
        latest = LocalLog.load(self.uri, files=self._unread is None)
        if latest is None:
            raise StoreError(f"the log of the Delta table at {self.uri} was deleted")
        self._files, self._sequence, self._unread = latest._files, latest._sequence, latest._unread
        self._carried = latest._carried
        self.metadata, self.protocol = latest.metadata, latest.protocol
        self._schema, self._version = latest._schema, latest._version
        self._listed, self._quiet = latest._listed, latest._quiet
        return True

    def _checkpoint_past(self) -> bool:
        """Whether ``_last_checkpoint`` may name a checkpoint past this version (True if it
        is missing or cannot be read).

        Called when the log directory seems unchanged since a listing that found nothing
        past this version, but that listing came within a clock tick of the directory's
        last change, so a change made right after the listing could have left the time as
        it was. Only one change could leave a reader behind unnoticed: a log cleanup deleting
        the next commit, which it does only below a newer checkpoint, and writers (delta-rs,
        Spark) name a new checkpoint in ``_last_checkpoint`` before they clean up. New
        commits the reader finds by reading the next one."""
        version = hinted_version(self._directory)
        return version is None or version > self._version

    def fork(self) -> LocalLog:
        """A copy at this version, without reading the log again (its delta-rs handle, if
        any, is not shared)."""
        twin = copy.copy(self)
        twin._files = dict(self._files)  # the one part updates change in place
        twin._table = None
        return twin

    def delta_table(self) -> DeltaTable:
        from deltalake import DeltaTable

        if self._table is None or self._table.version() != self._version:
            self._table = DeltaTable(self.uri, version=self._version)
        return self._table

    # -- replay

    def _replay_checkpoint(self, at: int, names: list[str], *, files: bool = True) -> None:
        if not files and self._replay_metadata(at, names):
            return
        for name in names:
            where = f"checkpoint {name} of the Delta table at {self.uri}"
            rows = checkpoint_rows(self._log / name, where)
            self._carried |= carries_other_actions(rows)
            for kind, value in checkpoint_actions(rows, where):
                self._apply(kind, value, where, at)
        self._version = at

    def _replay_metadata(self, at: int, names: list[str]) -> bool:
        """Read the protocol, the metadata and the paths of the data files of checkpoint
        ``at`` (its files ``names``), leaving the rest of its actions unread (``_unread``);
        False (and nothing read) for a checkpoint that is not read so simply: the whole of
        it is then read, and checked."""
        paths: list[str] = []
        actions: list[tuple[str, dict[str, Any], str]] = []
        for name in names:
            where = f"checkpoint {name} of the Delta table at {self.uri}"
            read = checkpoint_metadata(self._log / name, where)
            if read is None:
                return False
            actions += [(*action, where) for action in read[0]]
            paths += read[1]
        for kind, value, where in actions:
            self._apply(kind, value, where, at)
        self._unread = _Unread(at, names, frozenset(paths))
        self._version = at
        return True

    def _replay_commit(self, at: int) -> None:
        with open(f"{self._directory}/{at:020d}.json", "rb") as file:
            data = file.read()
        where = f"log entry {at} of the Delta table at {self.uri}"
        for kind, value in commit_actions(data, at, self.uri):
            self._apply(kind, value, where, at)
        self._version = at

    def _apply(self, kind: str, value: dict[str, Any], where: str, at: int) -> None:
        """Apply action ``value`` of ``kind``, read from version ``at`` (``where``)."""
        if kind == "add":
            self._add(value, where, at)
        elif kind == "remove":
            self._files.pop(value["path"], None)
            if self._unread is not None:
                self._unread = self._unread._replace(removed=self._unread.removed | {value["path"]})
        elif kind == "metaData":
            self._set_metadata(value)
        elif kind == "protocol":
            self._set_protocol(value)
        else:
            assert kind in CARRIED
            self._carried = True

    def _add(self, added: dict[str, Any], where: str, at: int) -> None:
        # Any deletion vector, even an empty or malformed one ({}), is for delta-rs to judge.
        if added.get("deletionVector") is not None or added["partitionValues"]:
            raise UnsupportedTable(f"data file {added['path']} is not plain Parquet")
        name = data_file(added["path"], where)
        self._sequence += 1
        modified, size = added["modificationTime"], added["size"]
        tag = (added.get("tags") or {}).get(MERGED_TAG)
        row_bytes = int(tag) if isinstance(tag, str) and tag.isdigit() else None
        self._files[added["path"]] = _Added(
            name, modified, self._sequence, at, size, added, row_bytes
        )

    def _set_metadata(self, metadata: dict[str, Any]) -> None:
        if metadata["partitionColumns"]:
            raise UnsupportedTable("the table is partitioned")
        fields = schema_fields(metadata["schemaString"])
        self._schema = pa.schema([arrow_field(f) for f in fields])
        self.metadata = metadata

    def _set_protocol(self, protocol: dict[str, Any]) -> None:
        if not readable_protocol(protocol):
            reader = protocol["minReaderVersion"]
            features = protocol.get("readerFeatures")
            raise UnsupportedTable(f"reader protocol {reader} {features}")
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
        return not any(f.metadata for f in all_fields(self.schema()))

    def append(self, rows: pa.Table, schema: pa.Schema, settings: ParquetSettings) -> None:
        if self.appendable(schema):
            try:
                self._commit_rows(rows, schema, settings, mode="Append")
            except UnsupportedTable:  # no hard links here: delta-rs commits from now on
                self._links = False
            else:
                self._checkpoint_if_due()
                return
        evolve = len(schema) > len(self.schema())
        write_with_delta_rs(self.delta_table(), rows, schema, settings, evolve=evolve)
        self.update(until=self._version + 1)

    # -- merging (compaction)

    def mergeable(self) -> bool:
        # The same rows in other files: what an append may write, a merge may rewrite.
        return self.appendable(self.schema())

    def write_merge(
        self, bins: list[list[str]], settings: ParquetSettings, row_group_rows: int
    ) -> Merge:
        files = self.data_files()  # (reads what a checkpoint left unread)
        logged = {added.name: path for path, added in self._files.items()}
        written: list[Path] = []
        removes: list[dict[str, Any]] = []
        adds: list[dict[str, Any]] = []
        try:
            for names in bins:
                data, stats, nbytes = self._merged_file(
                    {name: files[name] for name in names}, settings, row_group_rows
                )
                written.append(data)
                sources = [self._files[logged[name]] for name in names]
                removes += [
                    {
                        "path": logged[name],
                        "dataChange": False,  # ("deletionTimestamp" when committed)
                        "extendedFileMetadata": True,
                        "partitionValues": {},
                        "size": files[name],
                    }
                    for name in names
                ]
                adds.append(
                    {
                        "path": quote(data.name),
                        "partitionValues": {},
                        "size": data.stat().st_size,
                        # The merged file stands where its oldest source stood in the order
                        # files were added (``data_files``), so rows keep the order they
                        # were written in wherever in the table the merged files were.
                        "modificationTime": min(added.modified for added in sources),
                        "dataChange": False,
                        "stats": json.dumps(stats, separators=(",", ":"), ensure_ascii=False),
                        "tags": {MERGED_TAG: str(nbytes)},
                    }
                )
        except BaseException:  # (an interrupt too) nothing was published: no commit refers to them
            for data in written:
                data.unlink(missing_ok=True)
            raise
        schema = self.metadata["schemaString"]
        return Merge(tuple(written), tuple(removes), tuple(adds), schema)

    def commit_merge(self, merge: Merge) -> None:
        try:
            change = self._change_since(merge)
        except BaseException:  # (an interrupt too) nothing was published
            merge.discard()
            raise
        if change is not None:
            merge.discard()
            raise CommitConflict(
                f"the Delta table at {self.uri} changed by version {self._version} since the "
                f"merge was written: {change}"
            )
        now = time.time_ns() // 1_000_000
        removes = [{**r, "deletionTimestamp": now} for r in merge.removes]
        self._commit_merge(removes, list(merge.adds), list(merge.files), now)

    def _change_since(self, merge: Merge) -> str | None:
        """What keeps ``merge``, written on an earlier version, from being committed on this
        one, or None. It still stands if the table holds every file it replaces, in the
        schema it was written in: what was committed since only added files (as appends
        do), which the merge leaves as they are."""
        self.data_files()  # reads what a checkpoint left unread
        lost = sum(1 for r in merge.removes if r["path"] not in self._files)
        if lost:
            return f"{lost} of its files are gone"
        if merge.schema != self.metadata["schemaString"]:
            return "its schema changed"
        if not self.mergeable():
            return "podline can no longer merge it (its protocol or fields changed)"
        return None

    def _merged_file(
        self, files: dict[str, int], settings: ParquetSettings, row_group_rows: int
    ) -> tuple[Path, dict[str, Any], int]:
        """Write the rows of ``files`` (name -> size), in that order, to a new data file, a row
        group of at most ``row_group_rows`` at a time; its path, its statistics and the bytes
        its rows take in memory."""
        schema = self.schema()
        data = Path(self.uri, f"part-00000-{uuid.uuid4()}-c000.parquet")
        parts: list[dict[str, Any]] = []
        nbytes = 0
        table = f"the Delta table at {self.uri}"
        pieces = read_row_groups(files, schema.names, local_filesystem(self.uri), table)
        with pq.ParquetWriter(data, schema, **settings.for_pyarrow(schema)) as writer:
            # (Files written before a column was added lack it: nulls, as readers take it.)
            for rows in regrouped((conform(p, schema, ()) for p in pieces), row_group_rows):
                writer.write_table(rows, row_group_size=row_group_rows)
                parts.append(file_stats(rows))
                nbytes += rows.nbytes
        stats = merged_stats(parts) if parts else file_stats(schema.empty_table())
        return data, stats, nbytes

    def _commit_merge(
        self, removes: list[dict[str, Any]], adds: list[dict[str, Any]], data: list[Path], now: int
    ) -> None:
        """Commit a merge (the ``removes`` and ``adds`` of the files ``data``) as the next
        version, published as ``_commit_rows`` publishes its entry."""

        def summary(sizes: list[int]) -> str:
            return json.dumps(
                {
                    "avg": sum(sizes) / len(sizes),
                    "max": max(sizes),
                    "min": min(sizes),
                    "totalFiles": len(sizes),
                    "totalSize": sum(sizes),
                }
            )

        info = {
            "timestamp": now,
            "operation": "OPTIMIZE",
            "operationParameters": {"predicate": "[]"},
            "readVersion": self._version,
            "clientVersion": _CLIENT,
            "operationMetrics": {
                "numFilesAdded": len(adds),
                "numFilesRemoved": len(removes),
                "filesAdded": summary([a["size"] for a in adds]),
                "filesRemoved": summary([r["size"] for r in removes]),
                "preserveInsertionOrder": True,
            },
        }
        actions = [
            {"commitInfo": info},
            *({"remove": r} for r in removes),
            *({"add": a} for a in adds),
        ]
        entry = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in actions)
        at = self._version + 1
        # Durable before visible (see _durable), as an append's.
        syncing = Syncing(files=tuple(data), dirs=(Path(self.uri),))
        try:
            published = link_entry(self._log, entry.encode(), at, syncing)
        except (CommitConflict, UnsupportedTable, OSError) as exc:
            for written in data:  # nothing was published: no commit refers to them
                written.unlink(missing_ok=True)
            if isinstance(exc, UnsupportedTable):  # no hard links here: delta-rs merges from now on
                self._links = False
            raise
        sync_dir(published)
        self._confirm(at, adds[0]["path"], self._log / f"{at:020d}.json", tuple(data))
        where = f"log entry {at} of the Delta table at {self.uri}"
        for removed in removes:
            self._apply("remove", removed, where, at)
        for added in adds:
            self._add(added, where, at)
        self._version = at
        self._checkpoint_if_due()

    def _checkpoint_if_due(self) -> None:
        """After our commit: every ``delta.checkpointInterval`` versions, write a checkpoint at
        this version and, as delta-rs's commits would, delete log entries older than
        ``delta.logRetentionDuration`` (30 days by default); delta-rs does both for a table
        podline's checkpoint would not describe whole (``_own_checkpoints``)."""
        configuration = self.metadata["configuration"]
        interval = int(configuration.get("delta.checkpointInterval") or _CHECKPOINT_INTERVAL)
        if (self._version + 1) % interval:  # as delta-rs counts
            return
        cleanup = (configuration.get("delta.enableExpiredLogCleanup") or "true").lower() == "true"
        try:
            retention = _log_retention_ms(configuration)
            if self._own_checkpoints() and retention is not None:
                adds = [added.action for added in self._replay_order()]
                write_checkpoint(self._log, self._version, self.protocol, self.metadata, adds)
                if cleanup:
                    cutoff = time.time_ns() // 1_000_000 - retention
                    cleanup_expired_logs(self._log, self._version, cutoff)
                return
            table = self.delta_table()
            table.create_checkpoint()
            if cleanup:
                table.cleanup_metadata()
        except Exception as exc:  # the commit stands; readers replay a few more entries
            _log.warning("checkpoint of %s at version %d failed: %s", self.uri, self._version, exc)

    def _own_checkpoints(self) -> bool:
        """Whether podline's checkpoint (``write_checkpoint``) describes this table whole, as
        delta-rs's would: no action podline skips that a checkpoint carries, no setting that
        changes what a checkpoint holds, and removed files kept for no time (delta-rs would
        list those still kept). (podline commits only under a writer protocol of at most 2,
        ``appendable``: reader protocol 1, no features.)"""
        self.data_files()  # reads what a checkpoint left unread (and whether it carries more)
        configuration = self.metadata["configuration"]
        return (
            not self._carried
            and configuration.keys() <= _CHECKPOINT_NEUTRAL
            and _interval_ms(configuration.get("delta.deletedFileRetentionDuration")) == 0
        )

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
        make_dirs(Path(uri))
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
        log._commit_rows(
            rows,
            schema,
            settings,
            mode="ErrorIfExists",
            first=[{"protocol": protocol}, {"metaData": metadata}],
        )
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
        # Durable before visible (see _durable): the file and its name, before the entry.
        syncing = Syncing(files=(data,), dirs=(data.parent,))
        now = time.time_ns() // 1_000_000
        added = {
            "path": (path := quote(name)),
            "partitionValues": {},
            "size": data.stat().st_size,
            "modificationTime": now,
            "dataChange": True,
            # Unescaped UTF-8, as delta-rs writes: delta-rs misreads an escaped surrogate
            # pair (a character beyond U+FFFF) in statistics, and would skip its file.
            "stats": json.dumps(file_stats(rows), separators=(",", ":"), ensure_ascii=False),
        }
        info = {
            "timestamp": now,
            "operation": "WRITE",
            "operationParameters": {"mode": mode},
            "clientVersion": _CLIENT,
        }
        actions = [{"commitInfo": info}, *(first or ()), {"add": added}]
        entry = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in actions)
        at = self._version + 1
        try:
            if first is None:
                published = link_entry(self._log, entry.encode(), at, syncing)
            else:
                published = create_log(Path(self.uri), entry.encode(), syncing)
        except (CommitConflict, UnsupportedTable, OSError):
            data.unlink(missing_ok=True)  # nothing was published: no commit refers to it
            raise
        sync_dir(published)  # the entry's new name: a commit that returned survives too
        self._confirm(at, path, self._log / f"{at:020d}.json", (data,))
        self._add(added, f"log entry {at} of the Delta table at {self.uri}", at)
        self._version = at

    def _confirm(self, at: int, path: str, entry: Path, data: tuple[Path, ...]) -> None:
        """Make sure our commit ``at`` (the ``entry`` adding the files ``data``, the first as
        ``path``) extends the table as readers see it, or withdraw it (``CommitConflict``: the
        store reloads the table and tries again).

        Creating the entry only if absent is not enough when entries are deleted: a log
        cleanup deletes the entries older than a checkpoint, so version ``at`` may have been
        another writer's, now gone, below a checkpoint no reader looks past. The cleanup
        deletes entries oldest first, so while the commit before ours is there ours is
        above every cleaned-up one (one ``stat``, the usual case); otherwise the table is
        read as a new reader reads it and must hold our file."""
        if at > 0 and (self._log / f"{at - 1:020d}.json").exists():
            return
        if at == 0 and list_log(self._log).latest() == 0:
            return
        try:
            latest = LocalLog.load(self.uri)
        except UnsupportedTable:
            latest = None
        if latest is not None and path in latest._files:
            return
        # Below the newest checkpoint: no reader sees it, and no writer built on it.
        entry.unlink(missing_ok=True)
        for written in data:
            written.unlink(missing_ok=True)
        raise CommitConflict(
            f"version {at} of {self.uri} lies below a newer checkpoint of the table: a log "
            f"cleanup had deleted that version, committed by another writer"
        )


def _log_retention_ms(configuration: dict[str, str | None]) -> int | None:
    """How long the table keeps log entries (``delta.logRetentionDuration``), in
    milliseconds; None if podline does not read the setting as delta-rs would."""
    return _interval_ms(configuration.get("delta.logRetentionDuration") or _LOG_RETENTION)


def _interval_ms(text: str | None) -> int | None:
    """A Delta interval setting (``interval 30 days``) in whole milliseconds, read as
    delta-rs reads it; None for one it would refuse (its checkpoint then judges it)."""
    words = text.split() if text is not None and text.startswith("interval ") else []
    if len(words) < 3 or not words[1].isascii() or not words[1].isdigit():
        return None
    unit = _INTERVAL_UNITS_NS.get(words[2])
    return None if unit is None else int(words[1]) * unit // 1_000_000
