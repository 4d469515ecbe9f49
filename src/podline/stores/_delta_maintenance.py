"""Keeping a ``DeltaStore``'s tables fast as they age: compaction and removal of old files.

Every flush adds a data file and a log entry to each table it commits to, so a table that gains
rows at every run (run records, status rows) gains both at every run. Opening a table reads its
latest checkpoint, which lists every data file, and reading the table opens every file: a store
that never compacts slows down with every run (a fully cached 1,000-row pipeline took 32 ms
per run at first and 54 ms after 250 runs, with 443 data files). So the store maintains each
table by itself, within limits the user sets (``Maintenance``), and ``DeltaStore.compact``
does the same on request:

- **Compaction.** Once a table's log lists ``compact_files`` data files that are still small
  (``pending``), the flush that committed the last of them has small files rewritten into
  larger ones (a commit that changes no row): by podline itself for a plain local table,
  keeping the rows in the order they were written (``merge_small_files`` writes the merge,
  in the background while flushes go on, and ``commit_merged`` commits it), by delta-rs's
  ``optimize`` for any other. A table of one file is left alone, so a compaction with
  nothing to do writes nothing. Files are merged by size tiers (``merge_plan``,
  ``merge_size``), so rows already compacted are not rewritten at every compaction: a table
  gaining rows at every run would otherwise pay for all its rows each time (a second for a
  million status rows). No merge reads or writes more than ``compact_bytes``, and a file
  larger than half of that is never merged again: without that bound the tiers grow with
  the table, until one merge rewrites half of it in memory. Files podline merges are
  planned by weight (``TableLog.merge_weights``), which counts a merged file that compressed
  its rows by the rows' bytes: hashes are flushed uncompressed and merged with Zstandard,
  and a merge of up to the cap, planned by its size, came out small and was merged again.
- **Removal.** Files no commit has referred to for ``retention_hours`` (replaced by a
  compaction, or left by failed and killed writers) are deleted (``vacuum``). delta-rs logs a
  vacuum as two commits even when it deletes nothing, so a dry run decides first (on local
  tables, counting only files still there). In a local table's log, the files writers
  killed before publishing them left (``_delta_publish.STAGED``) are deleted at the same
  age (``delete_staged``): a vacuum looks only at data files.
- **Checkpoints** are written every ``delta.checkpointInterval`` commits (``_delta_log``), and
  log entries older than ``delta.logRetentionDuration`` deleted with them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

from podline.stores._delta_format import ParquetSettings
from podline.stores._delta_log import CommitConflict, Merge, TableLog
from podline.stores._delta_publish import STAGED

__all__ = [
    "DEFAULT_COMPACT_BYTES",
    "DEFAULT_COMPACT_FILES",
    "DEFAULT_RETENTION_HOURS",
    "Maintenance",
    "commit_merged",
    "delete_unreferenced",
    "merge_plan",
    "merge_size",
    "merge_small_files",
    "pending",
    "rewrite_small_files",
]

#: A table is compacted once its log lists this many data files.
DEFAULT_COMPACT_FILES = 64
#: Files no commit has referred to for this long are deleted (a week).
DEFAULT_RETENTION_HOURS = 168
#: No compaction reads or writes a file larger than this (delta-rs aims at 100 MB by itself).
DEFAULT_COMPACT_BYTES = 64 * 2**20
#: The largest row group a compaction writes. delta-rs holds a row group in memory until it is
#: written, and its own limit (about a million rows) cost 250 MB more for a 64 MB merge of
#: hash rows; at 65,536 rows the merge held 65 MB.
COMPACT_ROW_GROUP_ROWS = 65_536


class Maintenance(NamedTuple):
    """What a store does by itself to keep its tables fast (see the module docs)."""

    #: Compact a table once its log lists this many small files; None: never by itself.
    compact_files: int | None = DEFAULT_COMPACT_FILES
    #: Delete files no commit has referred to for this many hours, when compacting.
    retention_hours: int = DEFAULT_RETENTION_HOURS
    #: The largest file a compaction reads or writes; larger than half of it, a file stays.
    compact_bytes: int = DEFAULT_COMPACT_BYTES

    def due(self, log: TableLog) -> bool:
        """Whether the table at ``log`` is to be compacted now."""
        files = self.compact_files
        if files is None or log.file_count() < files:
            return False  # the count alone, without the sizes, decides most flushes
        return pending(list(log.merge_weights().values()), self.compact_bytes) >= files


def _bound(sizes: list[int], cap: int) -> int:
    """The largest merge target that keeps every full file (larger than half of ``cap``) out
    of delta-rs's plan, which takes in every file no larger than the target."""
    return min([cap, *(size - 1 for size in sizes if 2 * size > cap)])


def pending(sizes: list[int], cap: int) -> int:
    """How many of the files of ``sizes`` count toward a compaction: those small enough that
    any two of them fit one merge. A file larger than that is merged only where the tiers
    allow; never counted, it cannot make a store compact at every flush for nothing."""
    bound = _bound(sizes, cap)
    return sum(1 for size in sizes if 2 * size <= bound)


def _newest(sizes: list[int], least: int, bound: int) -> int | None:
    """How many of the newest files of ``sizes`` make the next tier (see ``merge_size``): the
    fewest, from ``least`` on, that the next older file outweighs and of which none makes up
    more than half, within ``bound``; None if no such files stay within it."""
    total = largest = 0
    for count, size in enumerate(reversed(sizes), start=1):
        total += size
        largest = max(largest, size)
        if total > bound:
            return None
        older = sizes[-count - 1] if count < len(sizes) else bound + 1
        if count >= max(least, 2) and 2 * largest <= total < older:
            return count
    return None


def merge_size(sizes: list[int], least: int | None, cap: int) -> int | None:
    """The ``target_size`` for delta-rs's ``optimize`` that merges small files of ``sizes`` (in
    the order they were added) into files of at most ``cap`` bytes and leaves every file larger
    than half of ``cap`` as it is; None if no two files can be merged so. (For tables podline
    does not merge itself: see ``merge_plan``.)

    delta-rs rewrites files no larger than the target, in bins of at most the target: since
    1.6 it packs neighbours in the log, the newest first (before, the largest first). With
    ``least`` the target merges the newest files, the fewest (from ``least`` on) that the next
    older file outweighs and of which none makes up more than half: a file is then rewritten
    only into one at least twice as large, a number of times that grows with the logarithm of
    the cap, and older, larger files stay. Without ``least``, or where no such files stay
    within the cap, delta-rs packs all the small files itself, into files of at most the cap
    (less where a full file is smaller).
    """
    bound = _bound(sizes, cap)
    count = None if least is None else _newest(sizes, least, bound)
    if count is not None:
        total = sum(sizes[-count:])
        older = sizes[-count - 1] if count < len(sizes) else bound + 1
        # Up to a quarter more lets the merged file come out a little larger than its
        # parts (delta-rs would start a second file at the target).
        return min(bound, older - 1, total + total // 4)
    small = sorted(size for size in sizes if size <= bound)
    if len(small) >= 2 and small[0] + small[1] <= bound:
        return bound
    return None


def merge_plan(files: dict[str, int], least: int | None, cap: int) -> list[list[str]]:
    """The files (name -> size, in the order they were added) podline merges itself, as bins
    each rewritten into one file holding their rows in the order they were added; none if no
    two files can be merged within ``cap``.

    The same tiers as ``merge_size``: with ``least``, the newest files that make the next
    tier, in one bin. Otherwise, or where they do not stay within the cap, every file that is
    not full, packed in the order they were added into bins of at most the cap (less where a
    full file is smaller); and if that merges nothing, the files ``pending`` counts (any two
    of which fit one merge), so that a table due for compaction always merges some. A merged
    file takes the place of its oldest source in that order (``LocalLog.merge``).
    """
    sizes = list(files.values())
    bound = _bound(sizes, cap)
    count = None if least is None else _newest(sizes, least, bound)
    if count is not None:
        return [list(files)[-count:]]
    return _packed(files, bound, bound) or _packed(files, bound, bound // 2)


def _packed(files: dict[str, int], bound: int, largest: int) -> list[list[str]]:
    """The files of at most ``largest`` bytes, packed in order into bins of at most ``bound``
    bytes; bins of one file left out."""
    bins: list[list[str]] = [[]]
    total = 0
    for name, size in files.items():
        if size > largest:
            # A bin ends at a file it leaves out, so that merged rows stay in their place
            # among the others; one file on its own goes on past it, or files of every other
            # size could leave a due table nothing to merge.
            if len(bins[-1]) > 1:
                bins.append([])
                total = 0
            continue
        if total + size > bound:
            bins.append([])
            total = 0
        bins[-1].append(name)
        total += size
    return [b for b in bins if len(b) > 1]


def rewrite_small_files(
    log: TableLog, cap: int, least: int | None = None, plain: frozenset[str] = frozenset()
) -> bool:
    """Rewrite the table's small files (the newest, at least ``least`` of them where the tiers
    allow; all without ``least``) into files of at most ``cap`` bytes, and move ``log`` to
    the version that made; False (and nothing written) if there was nothing to rewrite, or if
    another writer committed first (the next flush tries again).
    ``plain``: the columns the table's files are written without a dictionary.

    podline merges a plain local table itself (``merge_small_files``, then ``commit_merged``),
    keeping its rows in the order they were written: delta-rs writes a merged file's sources
    newest first, and a run reading a node's records in step with its input then had to read
    ahead (and hold) up to a merged file's rows. Other tables are delta-rs's to merge
    (``merge_size``)."""
    if log.file_count() < 2:
        return False
    if log.mergeable():
        merge = merge_small_files(log, cap, least, plain)
        return merge is not None and commit_merged(log, merge)
    target = merge_size(list(log.data_files().values()), least, cap)
    if target is None:
        return False
    metrics = log.delta_table().optimize.compact(
        target_size=target,
        max_concurrent_tasks=1,  # one merge in memory at a time
        writer_properties=ParquetSettings("zstd", plain).for_delta_rs(COMPACT_ROW_GROUP_ROWS),
    )
    log.update()
    return bool(metrics["numFilesRemoved"])


def merge_small_files(
    log: TableLog, cap: int, least: int | None, plain: frozenset[str]
) -> Merge | None:
    """The merge ``rewrite_small_files`` makes of a table podline merges itself (``log`` is
    ``mergeable``), written but not committed (``commit_merged``); None if there is nothing
    to merge. It only reads the table's data files, so it can be written while other commits
    go on (on a log of its own: ``TableLog.fork``)."""
    if log.file_count() < 2:
        return None
    bins = merge_plan(log.merge_weights(), least, cap)
    if not bins:
        return None
    return log.write_merge(bins, ParquetSettings("zstd", plain), COMPACT_ROW_GROUP_ROWS)


def commit_merged(log: TableLog, merge: Merge) -> bool:
    """Commit ``merge`` on ``log``'s version (the table's latest, or the attempt fails) and move
    ``log`` to the version that made; False (the merge discarded, ``log`` updated) if another
    writer committed first or took away a file it replaces."""
    try:
        log.commit_merge(merge)
    except CommitConflict:
        log.update()
        return False
    return True


def delete_unreferenced(log: TableLog, retention_hours: int, local_root: str | None) -> bool:
    """Delete the table's files that no commit has referred to for ``retention_hours``, and
    move ``log`` to the latest version; False (and nothing written) if there were none.

    delta-rs's dry run also lists files a vacuum already deleted (until their removal is a
    week old), so for a local table (``local_root``, its directory) only files still there
    count; on an object store its list is taken as it is. A local table's staged files of
    the same age go too (``delete_staged``)."""
    if local_root is not None:
        delete_staged(Path(local_root, "_delta_log"), retention_hours)
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


def delete_staged(log: Path, retention_hours: int) -> int:
    """Delete the files of the log directory ``log`` that writers were writing when they
    were killed (``STAGED``: commits and checkpoints not yet published) and last modified
    ``retention_hours`` ago or more; returns how many. A writer at work is never that slow:
    the same age lets a vacuum delete the data files such a writer wrote."""
    cutoff = time.time() - retention_hours * 3600
    deleted = 0
    try:
        entries = list(os.scandir(log))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not STAGED.fullmatch(entry.name):
            continue
        try:
            if entry.stat().st_mtime <= cutoff:
                os.unlink(entry.path)
                deleted += 1
        except FileNotFoundError:  # published or deleted meanwhile
            continue
    return deleted
