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
  to do writes nothing.
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


def rewrite_small_files(log: TableLog) -> bool:
    """Have delta-rs rewrite the table's small files into large ones, and move ``log`` to the
    version that made; False (and nothing written) if there was nothing to rewrite."""
    if log.file_count() < 2:
        return False
    metrics = log.delta_table().optimize.compact()
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
