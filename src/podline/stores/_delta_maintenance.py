"""Keeping a ``DeltaStore``'s tables fast as they age: compaction and removal of old files.

Every flush adds a data file and a log entry to each table it commits to, so a table that gains
rows at every run (run records, status rows) gains both at every run. Opening a table reads its
latest checkpoint, which lists every data file, and reading the table opens every file: a store
that never compacts slows down with every run (a fully cached 1,000-row pipeline took 32 ms
per run at first and 54 ms after 250 runs, with 443 data files). So the store maintains each
table by itself, within limits the user sets (``Maintenance``), and ``DeltaStore.compact``
does the same on request:

- **Compaction.** Once a table's log lists ``compact_files`` data files, the flush that
  committed the last of them has delta-rs rewrite the small files into one (``optimize``: a
  commit that changes no row). A table of one file is left alone, so a compaction with nothing
  to do writes nothing. Files are merged by size tiers (``merge_size``), so rows already
  compacted are not rewritten at every compaction: a table gaining rows at every run would
  otherwise pay for all its rows each time (a second for a million status rows).
- **Removal.** Files no commit has referred to for ``retention_hours`` (replaced by a
  compaction, or left by failed and killed writers) are deleted (``vacuum``). delta-rs logs a
  vacuum as two commits even when it deletes nothing, so a dry run decides first (on local
  tables, counting only files still there).
- **Checkpoints** are written every ``delta.checkpointInterval`` commits (``_delta_log``), and
  log entries older than ``delta.logRetentionDuration`` deleted with them.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

from podline.stores._delta_log import TableLog

__all__ = [
    "DEFAULT_COMPACT_FILES",
    "DEFAULT_RETENTION_HOURS",
    "Maintenance",
    "delete_unreferenced",
    "merge_size",
    "rewrite_small_files",
]

#: A table is compacted once its log lists this many data files.
DEFAULT_COMPACT_FILES = 64
#: Files no commit has referred to for this long are deleted (a week).
DEFAULT_RETENTION_HOURS = 168


class Maintenance(NamedTuple):
    """What a store does by itself to keep its tables fast (see the module docs)."""

    #: Compact a table once its log lists this many data files; None: never by itself.
    compact_files: int | None = DEFAULT_COMPACT_FILES
    #: Delete files no commit has referred to for this many hours, when compacting.
    retention_hours: int = DEFAULT_RETENTION_HOURS

    def due(self, log: TableLog) -> bool:
        """Whether the table at ``log`` is to be compacted now."""
        return self.compact_files is not None and log.file_count() >= self.compact_files


def merge_size(sizes: list[int], least: int) -> int | None:
    """The ``target_size`` for delta-rs's ``optimize`` that merges the smallest files of
    ``sizes`` (at least ``least`` of them, or all) into one file and leaves every larger file
    as it is; None to merge them all as delta-rs would by itself.

    delta-rs leaves files larger than the target alone and packs the others, largest first,
    into files of at most the target, so a target of the total of the ``k`` smallest merges
    exactly those when the next one is larger than their total. The smallest such ``k`` from
    ``least`` on is taken: a compacted file then stays until files as large as it have piled
    up beside it, and a row is rewritten a number of times that grows with the logarithm of
    the table's size, not with it.
    """
    ordered = sorted(sizes)
    total = sum(ordered[: max(least, 1) - 1])
    for k in range(max(least, 1), len(ordered)):
        total += ordered[k - 1]
        if ordered[k] > total:
            return total
    return None


def rewrite_small_files(log: TableLog, least: int = 2) -> bool:
    """Have delta-rs rewrite the table's small files (at least ``least`` of them, see
    ``merge_size``) into one, and move ``log`` to the version that made; False (and nothing
    written) if there was nothing to rewrite."""
    if log.file_count() < 2:
        return False
    target = merge_size(list(log.data_files().values()), least)
    metrics = log.delta_table().optimize.compact(target_size=target)
    log.update()
    return bool(metrics["numFilesRemoved"])


def delete_unreferenced(log: TableLog, retention_hours: int, local_root: str | None) -> bool:
    """Delete the table's files that no commit has referred to for ``retention_hours``, and
    move ``log`` to the latest version; False (and nothing written) if there were none.

    delta-rs's dry run also lists files a vacuum already deleted (until their removal is a
    week old), so for a local table (``local_root``, its directory) only files still there
    count; on an object store its list is taken as it is."""
    table = log.delta_table()

    def vacuum(dry_run: bool) -> list[str]:
        return table.vacuum(
            retention_hours=retention_hours,
            dry_run=dry_run,
            enforce_retention_duration=False,
            full=True,
        )

    listed = vacuum(dry_run=True)
    if local_root is not None:
        listed = [name for name in listed if Path(local_root, unquote(name)).exists()]
    if not listed:
        return False
    vacuum(dry_run=False)
    log.update()
    return True
